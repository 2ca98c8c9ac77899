"""The ``ollama`` provider: Ollama's native HTTP API (chat, embed, pull, list) over httpx.

Chat and pull stream newline-delimited JSON; a JSON schema goes in ``format``, which Ollama
turns into a grammar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from awe.ai import errors
from awe.ai.llm.base import ChatRequest, Completion, TokenSink
from awe.core.config import Settings
from awe.engine import outbound

DEFAULT_MODEL = "llama3.2"


class OllamaClient:
    """Ollama's HTTP API: chat, embed, pull and list."""

    name = "ollama"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = settings.ollama_url.rstrip("/")

    def _client(self) -> httpx.Client:
        """A client that may reach the configured server, and what the outbound policy allows."""
        return outbound.client(
            self.settings, trusted=[self.base], timeout=self.settings.llm_timeout
        )

    def default_model(self) -> str:
        """The configured model, or llama3.2."""
        return self.settings.llm_model or DEFAULT_MODEL

    @contextmanager
    def _stream(self, path: str, payload: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
        try:
            with (
                self._client() as client,
                client.stream("POST", self.base + path, json=payload) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise errors.by_status("ollama", response.status_code, _said(response))
                yield (json.loads(line) for line in response.iter_lines() if line.strip())
        except httpx.TimeoutException as exc:
            raise errors.timed_out("ollama", f"{self.base}: {exc}") from None
        except httpx.TransportError as exc:
            raise errors.unreachable("ollama", f"{self.base}: {exc}") from None

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """POST /api/chat, streamed."""
        options: dict[str, Any] = {
            "temperature": request.temperature,
            "num_predict": request.max_tokens,
            "repeat_penalty": request.repeat_penalty,
        }
        if request.stop:
            options["stop"] = request.stop
        if request.seed is not None:
            options["seed"] = request.seed
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "options": options,
        }
        if request.json_schema is not None:
            payload["format"] = request.json_schema
        parts: list[str] = []
        last: dict[str, Any] = {}
        with self._stream("/api/chat", payload) as lines:
            for line in lines:
                if "error" in line:
                    raise errors.bad_request("ollama", str(line["error"]))
                text = (line.get("message") or {}).get("content") or ""
                if text:
                    parts.append(text)
                    if on_token is not None:
                        on_token(text)
                if line.get("done"):
                    last = line
        return Completion(
            text="".join(parts),
            model=str(last.get("model") or request.model),
            prompt_tokens=int(last.get("prompt_eval_count") or 0),
            completion_tokens=int(last.get("eval_count") or len(parts)),
            finish_reason=last.get("done_reason"),
        )

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """POST /api/embed: one vector per text."""
        try:
            with self._client() as client:
                response = client.post(
                    self.base + "/api/embed", json={"model": model, "input": texts}
                )
        except httpx.TimeoutException as exc:
            raise errors.timed_out("ollama", str(exc)) from None
        except httpx.TransportError as exc:
            raise errors.unreachable("ollama", f"{self.base}: {exc}") from None
        if response.status_code >= 400:
            raise errors.by_status("ollama", response.status_code, _said(response))
        return [list(map(float, v)) for v in response.json()["embeddings"]]

    def list_models(self) -> list[dict[str, Any]]:
        """GET /api/tags: the models the server has."""
        try:
            with self._client() as client:
                response = client.get(self.base + "/api/tags")
        except httpx.TransportError as exc:
            raise errors.unreachable("ollama", f"{self.base}: {exc}") from None
        if response.status_code >= 400:
            raise errors.by_status("ollama", response.status_code, _said(response))
        return list(response.json().get("models", []))

    def pull(self, model: str, on_progress: Callable[[dict[str, Any]], None]) -> None:
        """POST /api/pull, streamed: ``on_progress`` gets each status line."""
        with self._stream("/api/pull", {"model": model, "stream": True}) as lines:
            for line in lines:
                if "error" in line:
                    raise errors.bad_request("ollama", str(line["error"]))
                on_progress(line)


def _said(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:300]
