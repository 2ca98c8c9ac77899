"""The ``anthropic`` provider: the official SDK's streaming Messages API.

A system message goes in ``system``; a JSON schema is asked for in the system prompt (the step
validates the answer and asks once more on a mismatch). SDK retries are off: the engine retries.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from awe.ai import errors
from awe.ai.llm.base import ChatRequest, Completion, TokenSink
from awe.core.config import Settings
from awe.core.errors import DependencyError
from awe.engine import outbound

DEFAULT_MODEL = "claude-3-5-haiku-latest"
DEFAULT_BASE_URL = "https://api.anthropic.com"


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise DependencyError("the anthropic provider needs the anthropic package") from None
    return anthropic


def classify(exc: Exception) -> Exception:
    """The engine's view of an anthropic SDK error."""
    anthropic = _sdk()
    refused = outbound.refused_cause(exc)
    if refused is not None:
        return refused
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, anthropic.APITimeoutError):
        return errors.timed_out("anthropic", detail)
    if isinstance(exc, anthropic.APIConnectionError):
        return errors.unreachable("anthropic", detail)
    if isinstance(exc, anthropic.APIStatusError):
        # 529 is Anthropic's "overloaded": a server error worth retrying.
        return errors.by_status("anthropic", exc.status_code, detail)
    return exc


class AnthropicProvider:
    """Chat through the anthropic SDK."""

    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        anthropic = _sdk()
        self.settings = settings
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        self.client = anthropic.Anthropic(
            api_key=key or "not-set",
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout,
            max_retries=0,
            http_client=outbound.sdk_client(
                settings,
                trusted=[settings.anthropic_base_url or DEFAULT_BASE_URL],
                timeout=settings.llm_timeout,
                follow_redirects=True,
            ),
        )
        # Recent API versions dropped sampling temperature; send it only where it is known.
        self._takes_temperature = (
            "temperature" in inspect.signature(self.client.messages.stream).parameters
        )

    def default_model(self) -> str:
        """The configured model, or Claude Haiku."""
        return self.settings.llm_model or DEFAULT_MODEL

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """Stream a message; usage from the message_start and message_delta events."""
        anthropic = _sdk()
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        if request.json_schema is not None:
            system = (system + "\n\n" if system else "") + (
                "Answer with one JSON value only, no prose, matching this JSON schema: "
                + json.dumps(request.json_schema)
            )
        options: dict[str, Any] = {
            "model": request.model,
            "messages": [m for m in request.messages if m["role"] != "system"],
            "max_tokens": request.max_tokens,
        }
        if self._takes_temperature:
            options["temperature"] = request.temperature
        if system:
            options["system"] = system
        if request.stop:
            options["stop_sequences"] = request.stop
        parts: list[str] = []
        try:
            with self.client.messages.stream(**options) as stream:
                for text in stream.text_stream:
                    parts.append(text)
                    if on_token is not None:
                        on_token(text)
                final = stream.get_final_message()
        except anthropic.AnthropicError as exc:
            raise classify(exc) from None
        return Completion(
            text="".join(parts),
            model=final.model or request.model,
            prompt_tokens=int(final.usage.input_tokens or 0),
            completion_tokens=int(final.usage.output_tokens or 0),
            finish_reason=final.stop_reason,
        )
