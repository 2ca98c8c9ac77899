"""llama.cpp's AMX kernels crash some machines: on a CPU with Intel AMX (Sapphire Rapids and
newer, virtual machines included) a build made for that CPU picks its AMX matrix multiply for
the weights it repacks, and the SmolLM2 model segfaults there on its first token. Loading the
weights without the extra (repacked) buffer types keeps llama.cpp on its AVX kernels. Machines
without AMX keep repacking, which speeds up the larger quantised models."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from awe.core.logging import get_logger

log = get_logger("ai")

_CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_has_amx(cpuinfo: Path = _CPUINFO) -> bool:
    """Whether the CPU reports AMX tiles (Linux: the ``amx_tile`` flag of /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return any(
        "amx_tile" in line.split(":", 1)[-1].split()
        for line in text.splitlines()
        if line.startswith("flags")
    )


def guard(llama_cpp_module: Any | None = None, *, amx: bool | None = None) -> bool:
    """Make every later ``Llama(...)`` of this process load its weights without extra buffer
    types when the CPU has AMX; True when it did. Idempotent."""
    if not (cpu_has_amx() if amx is None else amx):
        return False
    module: Any = llama_cpp_module
    if module is None:
        import llama_cpp.llama_cpp as module  # the ctypes layer Llama() reads
    defaults = module.llama_model_default_params
    if getattr(defaults, "awe_guarded", False):
        return True
    if "use_extra_bufts" not in {name for name, *_ in type(defaults())._fields_}:
        # An older llama.cpp: ctypes would take the assignment as a plain attribute and
        # change nothing.
        log.warning("llama.cpp has no use_extra_bufts: its AMX kernels stay on")
        return False

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    without_extra_buffers.awe_guarded = True  # type: ignore[attr-defined]
    without_extra_buffers.awe_original = defaults  # type: ignore[attr-defined]
    module.llama_model_default_params = without_extra_buffers
    return True


def serve() -> None:
    """``python -m awe.ai.llm.kernels ARGS``: llama-cpp-python's OpenAI-compatible server with
    the guard on (its own ``python -m llama_cpp.server`` takes the same arguments)."""
    guard()
    from llama_cpp.server.__main__ import main

    main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    serve()
