"""The AMX guard: on a CPU with AMX, llama.cpp loads weights without extra buffer types (its
AMX kernels segfault there); elsewhere nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.ai.llm import kernels

llama_cpp = pytest.importorskip("llama_cpp.llama_cpp")


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    """``amx_tile`` among a ``flags`` line means AMX; the word elsewhere, or no file, does not."""
    with_amx = tmp_path / "amx"
    with_amx.write_text("model name\t: Xeon amx_tile\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("model name\t: amx_tile lookalike\nflags\t\t: fpu avx2 avx512f\n")
    assert kernels.cpu_has_amx.__wrapped__(with_amx) is True
    assert kernels.cpu_has_amx.__wrapped__(without) is False
    assert kernels.cpu_has_amx.__wrapped__(tmp_path / "missing") is False


def test_the_guard_turns_extra_buffers_off_only_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    """With AMX, llama-cpp-python's default model parameters come back without extra buffer
    types, once however often the guard runs; without AMX they are left as they were."""
    # The model may be loaded already in this process (the guard then is on): start unguarded.
    current = llama_cpp.llama_model_default_params
    monkeypatch.setattr(
        llama_cpp, "llama_model_default_params", getattr(current, "awe_original", current)
    )
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True
    assert kernels.guard(llama_cpp, amx=False) is False
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True
    assert kernels.guard(llama_cpp, amx=True) is True
    guarded = llama_cpp.llama_model_default_params
    assert guarded().use_extra_bufts is False
    assert kernels.guard(llama_cpp, amx=True) is True
    assert llama_cpp.llama_model_default_params is guarded
