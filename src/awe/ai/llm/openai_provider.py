"""The ``openai`` provider: the official SDK, against OpenAI or any OpenAI-compatible server.

``AWE_OPENAI_BASE_URL`` points it at vLLM, a llama.cpp server, LM Studio… The SDK's own retries
are off: the engine retries, with its backoff and its dead-letter queue. A JSON schema is sent
as ``json_schema`` response format; servers that only know llama.cpp's ``json_object`` with a
schema get that instead (found out once per provider).
"""

from __future__ import annotations

import threading
from typing import Any

from awe.ai import errors
from awe.ai.llm.base import ChatRequest, Completion, TokenSink
from awe.core.config import Settings
from awe.core.errors import DependencyError
from awe.engine import outbound

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _sdk() -> Any:
    try:
        import openai
    except ImportError:
        raise DependencyError("the openai provider needs the openai package") from None
    return openai


def classify(exc: Exception, provider: str = "openai") -> Exception:
    """The engine's view of an openai SDK error (rate limit, timeout, key, request…)."""
    openai = _sdk()
    refused = outbound.refused_cause(exc)
    if refused is not None:
        return refused
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        return errors.timed_out(provider, detail)
    if isinstance(exc, openai.APIConnectionError):
        return errors.unreachable(provider, detail)
    if isinstance(exc, openai.APIStatusError):
        return errors.by_status(provider, exc.status_code, detail)
    return exc


class OpenAIProvider:
    """Chat through the openai SDK."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        openai = _sdk()
        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self.client = openai.OpenAI(
            api_key=key or "not-needed",  # local compatible servers take any key
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout,
            max_retries=0,
            http_client=outbound.sdk_client(
                settings,
                trusted=[settings.openai_base_url or DEFAULT_BASE_URL],
                timeout=settings.llm_timeout,
                follow_redirects=True,
            ),
        )
        self._schema_style = "json_schema"
        self._lock = threading.Lock()

    def default_model(self) -> str:
        """The configured model, or gpt-4o-mini."""
        return self.settings.llm_model or DEFAULT_MODEL

    def _format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._schema_style == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """Stream a chat completion; usage comes from the final chunk when the server sends it."""
        openai = _sdk()
        options: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            options["stop"] = request.stop
        if request.seed is not None:
            options["seed"] = request.seed
        try:
            if request.json_schema is not None:
                options["response_format"] = self._format(request.json_schema)
            try:
                stream = self.client.chat.completions.create(**options)
            except openai.APIStatusError as exc:  # llama.cpp's server even answers 500 here
                refused_format = (
                    "response_format" in str(exc) and self._schema_style == "json_schema"
                )
                if request.json_schema is None or not refused_format:
                    raise
                with self._lock:  # a llama.cpp-style server: use its form from now on
                    self._schema_style = "json_object"
                options["response_format"] = self._format(request.json_schema)
                stream = self.client.chat.completions.create(**options)
            return _collect(stream, request, on_token)
        except openai.OpenAIError as exc:
            raise classify(exc) from None


def _collect(stream: Any, request: ChatRequest, on_token: TokenSink | None) -> Completion:
    parts: list[str] = []
    usage = None
    finish = None
    with stream:
        for chunk in stream:
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            text = choice.delta.content if choice.delta else None
            if text:
                parts.append(text)
                if on_token is not None:
                    on_token(text)
            finish = choice.finish_reason or finish
    text = "".join(parts)
    return Completion(
        text=text,
        model=request.model,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or len(parts)),
        finish_reason=finish,
    )
