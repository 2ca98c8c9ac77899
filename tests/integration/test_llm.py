"""The llm step with every provider: the real local model, the openai SDK against llama-cpp's own
OpenAI-compatible server, and the anthropic SDK and Ollama's API against local stand-ins."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from awe.ai.llm.local import default_gguf
from awe.core import metrics
from awe.core.config import Settings
from awe.engine.client import Engine
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.ai_standins import anthropic_error, anthropic_stream, ollama_server
from tests.support.servers import HttpServer, free_port, http_server

# The providers do not depend on the database: SQLite is enough here.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def llm_step(**with_: Any) -> dict[str, Any]:
    """A one-step workflow calling the llm kind, no retries."""
    return {
        "name": "ask",
        "steps": [{"id": "ask", "kind": "llm", "retry": {"max_attempts": 1}, "with": with_}],
    }


def run_step(engine: Engine, drain: Drain, settings: Settings, **with_: Any) -> Any:
    """Submit, drain with ``settings``, and return the step record."""
    run_id = engine.submit(llm_step(**with_))
    drain(settings=settings)
    return engine.get_run(run_id).step("ask")


# ------------------------------------------------------------------------------------ local


def test_local_model_answers_streams_and_counts(
    engine: Engine, drain: Drain, settings: Settings
) -> None:
    """The bundled SmolLM2 generates; tokens stream into coalesced events; usage is counted, in
    the step's output and in the process's metrics (requests, tokens in and out, latency)."""
    series = {"provider": "local", "model": "smollm2-135m-instruct"}
    before = {
        (name, labels.get("direction")): metrics.REGISTRY.get_sample_value(name, labels) or 0.0
        for name, labels in (
            ("awe_llm_requests_total", {**series, "outcome": "ok"}),
            ("awe_llm_tokens_total", {**series, "direction": "in"}),
            ("awe_llm_tokens_total", {**series, "direction": "out"}),
            ("awe_llm_request_duration_seconds_count", series),
        )
    }
    step = run_step(
        engine,
        drain,
        settings,
        system="Answer in one short sentence.",
        prompt="What is the capital of France?",
        max_tokens=48,
        temperature=0,
    )
    assert step.status == "succeeded", step.error_message
    out = step.output
    assert (out["provider"], out["model"]) == ("local", "smollm2-135m-instruct")
    assert "Paris" in out["text"]
    assert out["usage"]["prompt_tokens"] > 5
    assert 0 < out["usage"]["completion_tokens"] <= 48
    events = [e for e in engine.events(step.run_id) if e.type == "tokens"]
    assert events
    assert "".join(e.message for e in events) == out["text"]
    assert len(events) < out["usage"]["completion_tokens"]  # coalesced, not one per token
    (summary,) = [e for e in engine.events(step.run_id) if e.type == "llm"]
    assert summary.data is not None
    assert summary.data["usage"] == out["usage"]
    after = {
        (name, labels.get("direction")): metrics.REGISTRY.get_sample_value(name, labels)
        for name, labels in (
            ("awe_llm_requests_total", {**series, "outcome": "ok"}),
            ("awe_llm_tokens_total", {**series, "direction": "in"}),
            ("awe_llm_tokens_total", {**series, "direction": "out"}),
            ("awe_llm_request_duration_seconds_count", series),
        )
    }
    grew = {key: (after[key] or 0.0) - was for key, was in before.items()}
    assert grew == {
        ("awe_llm_requests_total", None): 1,
        ("awe_llm_tokens_total", "in"): out["usage"]["prompt_tokens"],
        ("awe_llm_tokens_total", "out"): out["usage"]["completion_tokens"],
        ("awe_llm_request_duration_seconds_count", None): 1,
    }


def test_local_model_json_schema_output(engine: Engine, drain: Drain, settings: Settings) -> None:
    """With a JSON schema the local model's answer is valid JSON of that shape, parsed."""
    step = run_step(
        engine,
        drain,
        settings,
        prompt="Extract the person: 'Alice Smith is 31 years old.'",
        json_schema=PERSON,
        temperature=0,
        max_tokens=64,
    )
    assert step.status == "succeeded", step.error_message
    assert step.output["json"]["age"] == 31
    assert "Alice" in step.output["json"]["name"]


def test_bad_parameters_and_unknown_model_fail_without_retry(
    engine: Engine, drain: Drain, settings: Settings
) -> None:
    """A bad schema or a model name the local provider cannot resolve is a validation error."""
    bad = run_step(engine, drain, settings, prompt="x", json_schema={"type": "nope"})
    assert (bad.status, bad.error_category) == ("dead", "validation")
    assert "with.json_schema is not a JSON schema" in (bad.error_message or "")
    unknown = run_step(engine, drain, settings, prompt="x", model="gpt-9")
    assert unknown.error_category == "validation"
    assert "AWE_LLM_MODEL_PATH" in (unknown.error_message or "")


def test_cancelling_stops_a_long_generation(
    engine: Engine, database: Any, settings: Settings
) -> None:
    """A run cancelled while the model streams stops generating at the next token."""
    from awe.engine.worker import Worker, WorkerOptions

    run_id = engine.submit(
        llm_step(prompt="Write a very long story about a dragon.", max_tokens=1500, temperature=0.8)
    )
    worker = Worker(database, WorkerOptions(concurrency=1, lease_seconds=2), settings=settings)
    import threading

    thread = threading.Thread(target=worker.run, kwargs={"burst": True})
    thread.start()
    deadline = time.monotonic() + 120
    while not [e for e in engine.events(run_id) if e.type == "tokens"]:
        assert time.monotonic() < deadline, "no tokens streamed"
        time.sleep(0.05)
    engine.cancel(run_id)
    thread.join(timeout=60)
    step = engine.get_run(run_id).step("ask")
    assert step.status == "cancelled"
    streamed = "".join(e.message for e in engine.events(run_id) if e.type == "tokens")
    assert 0 < len(streamed.split()) < 1000


# ----------------------------------------------------------------------- openai (real server)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the same GGUF; its /v1 base URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "awe.ai.llm.kernels", "--model", str(default_gguf()),
            "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "llama_cpp.server exited"
            try:
                if httpx.get(base + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_openai_provider_against_llama_cpp_server(
    engine: Engine, drain: Drain, tmp_path: Path, llama_server: str
) -> None:
    """The openai SDK streams from a real OpenAI-compatible server; a schema still gives JSON
    (the server knows only json_object: the provider falls back to it by itself)."""
    settings = make_settings(tmp_path, llm_provider="openai", openai_base_url=llama_server)
    step = run_step(
        engine,
        drain,
        settings,
        model="smollm2",
        prompt="Extract the person: 'Bob Lee is 42 years old.'",
        json_schema=PERSON,
        temperature=0,
        max_tokens=64,
    )
    assert step.status == "succeeded", step.error_message
    assert step.output["provider"] == "openai"
    assert step.output["json"]["age"] == 42
    assert step.output["usage"]["completion_tokens"] > 0
    assert [e for e in engine.events(step.run_id) if e.type == "tokens"]


def test_openai_unreachable_is_a_retryable_connection_error(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """Nothing listening at the base URL: category 'connection', retryable."""
    base = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(tmp_path, llm_provider="openai", openai_base_url=base)
    step = run_step(engine, drain, settings, prompt="hi")
    assert step.error_category == "connection"


# ------------------------------------------------------------------------ anthropic stand-in


@pytest.fixture
def anthropic_api() -> Iterator[HttpServer]:
    """A local server speaking the Messages API."""
    with http_server() as server:
        yield server


def anthropic_settings(tmp_path: Path, server: HttpServer) -> Settings:
    """Settings pointing the anthropic provider at the stand-in."""
    return make_settings(
        tmp_path, llm_provider="anthropic", anthropic_base_url=server.url, anthropic_api_key="k"
    )


def test_anthropic_streams_through_the_sdk(
    engine: Engine, drain: Drain, tmp_path: Path, anthropic_api: HttpServer
) -> None:
    """The anthropic SDK streams the answer; the system prompt goes in 'system'; usage is read."""
    anthropic_api.script("/v1/messages", anthropic_stream("Hello from the stand-in."))
    step = run_step(
        engine, drain, anthropic_settings(tmp_path, anthropic_api), system="Be brief.", prompt="Hi"
    )
    assert step.status == "succeeded", step.error_message
    assert step.output["text"] == "Hello from the stand-in."
    assert step.output["usage"]["prompt_tokens"] == 11
    (request,) = anthropic_api.seen("/v1/messages")
    sent = request.json()
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]
    assert request.header("x-api-key") == "k" or request.header("authorization") == "Bearer k"


def test_schema_mismatch_is_put_back_once_with_the_error(
    engine: Engine, drain: Drain, tmp_path: Path, anthropic_api: HttpServer
) -> None:
    """A first answer that does not fit the schema is answered with the error; the second fits."""
    anthropic_api.script(
        "/v1/messages",
        anthropic_stream('{"name": "Ann"}'),
        anthropic_stream('{"name": "Ann", "age": 7}'),
    )
    step = run_step(
        engine,
        drain,
        anthropic_settings(tmp_path, anthropic_api),
        prompt="Ann is 7",
        json_schema=PERSON,
    )
    assert step.status == "succeeded", step.error_message
    assert step.output["json"] == {"name": "Ann", "age": 7}
    first, second = anthropic_api.seen("/v1/messages")
    assert "JSON schema" in first.json()["system"]
    retry_message = second.json()["messages"][-1]["content"]
    assert "'age' is a required property" in retry_message


def test_schema_mismatch_twice_fails_the_step(
    engine: Engine, drain: Drain, tmp_path: Path, anthropic_api: HttpServer
) -> None:
    """Two answers that do not fit: the step fails as a validation error (not retried)."""
    anthropic_api.script("/v1/messages", anthropic_stream("not json at all"))
    step = run_step(
        engine, drain, anthropic_settings(tmp_path, anthropic_api), prompt="x", json_schema=PERSON
    )
    assert (step.status, step.error_category) == ("dead", "validation")
    assert "does not match with.json_schema" in (step.error_message or "")
    assert len(anthropic_api.seen("/v1/messages")) == 2


@pytest.mark.parametrize(
    ("status", "kind", "category", "retryable"),
    [
        (429, "rate_limit_error", "rate_limited", True),
        (529, "overloaded_error", "provider:529", True),
        (401, "authentication_error", "auth", False),
        (400, "invalid_request_error", "bad_request", False),
    ],
)
def test_provider_errors_are_classified(
    engine: Engine,
    drain: Drain,
    tmp_path: Path,
    anthropic_api: HttpServer,
    status: int,
    kind: str,
    category: str,
    retryable: bool,
) -> None:
    """Rate limits and overloads are retried; bad keys and bad requests go to the DLQ at once."""
    anthropic_api.script("/v1/messages", anthropic_error(status, kind, "nope"))
    run_id = engine.submit(
        {
            "name": "ask",
            "steps": [
                {
                    "id": "ask",
                    "kind": "llm",
                    "retry": {"max_attempts": 2, "backoff": [0], "jitter": 0},
                    "with": {"prompt": "hi"},
                }
            ],
        }
    )
    drain(settings=anthropic_settings(tmp_path, anthropic_api))
    step = engine.get_run(run_id).step("ask")
    assert (step.status, step.error_category) == ("dead", category)
    assert step.attempt == (2 if retryable else 1)


# --------------------------------------------------------------------------- ollama stand-in


def test_ollama_chat_streams(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """The ollama provider posts to /api/chat with the schema in 'format' and reads the stream."""
    with http_server() as ollama:
        ollama_server(ollama, answer='{"name": "Cy", "age": 3}')
        settings = make_settings(tmp_path, llm_provider="ollama", ollama_url=ollama.url)
        step = run_step(engine, drain, settings, prompt="Cy is 3", json_schema=PERSON, seed=1)
        assert step.status == "succeeded", step.error_message
        assert step.output["json"] == {"name": "Cy", "age": 3}
        assert step.output["usage"] == {
            "prompt_tokens": 9,
            "completion_tokens": 6,
            "total_tokens": 15,
        }
        (request,) = ollama.seen("/api/chat")
        sent = request.json()
        assert (sent["model"], sent["format"], sent["options"]["seed"]) == ("llama3.2", PERSON, 1)


def test_ollama_missing_model_is_a_bad_request(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """Ollama's 404 for a model it does not have is not retried, and says so."""
    from tests.support.servers import Reply

    with http_server() as ollama:
        ollama.script("/api/chat", Reply(status=404, body={"error": "model 'x' not found"}))
        settings = make_settings(tmp_path, llm_provider="ollama", ollama_url=ollama.url)
        step = run_step(engine, drain, settings, prompt="hi", model="x")
    assert (step.status, step.error_category) == ("dead", "bad_request")
    assert "model 'x' not found" in (step.error_message or "")
