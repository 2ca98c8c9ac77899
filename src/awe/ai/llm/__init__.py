"""LLM providers behind one interface, chosen per step or by default from the settings."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from awe.ai.llm.base import ChatProvider, ChatRequest, Completion, TokenSink, with_system
from awe.core.errors import ValidationFailed
from awe.engine.spec import did_you_mean

if TYPE_CHECKING:  # the llm kind's module is loaded to check files, without settings
    from awe.core.config import Settings

PROVIDERS = ("local", "ollama", "openai", "anthropic")
_cache: dict[tuple[str, int], ChatProvider] = {}
_lock = threading.Lock()


def get_provider(name: str | None, settings: Settings) -> ChatProvider:
    """The provider called ``name`` (default: AWE_LLM_PROVIDER), one per process and settings."""
    chosen = name or settings.llm_provider
    if chosen not in PROVIDERS:
        raise ValidationFailed(
            f"unknown LLM provider {chosen!r}; known: {', '.join(PROVIDERS)}"
            + did_you_mean(chosen, PROVIDERS)
        )
    from awe.ai.measured import MeasuredProvider

    key = (chosen, id(settings))
    with _lock:
        if key not in _cache:
            _cache[key] = MeasuredProvider(_build(chosen, settings))
        return _cache[key]


def _build(name: str, settings: Settings) -> ChatProvider:
    if name == "local":
        from awe.ai.llm.local import LocalProvider

        return LocalProvider(settings)
    if name == "ollama":
        from awe.ai.llm.ollama import OllamaClient

        return OllamaClient(settings)
    if name == "openai":
        from awe.ai.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(settings)
    from awe.ai.llm.anthropic_provider import AnthropicProvider

    return AnthropicProvider(settings)


__all__ = [
    "PROVIDERS",
    "ChatProvider",
    "ChatRequest",
    "Completion",
    "TokenSink",
    "get_provider",
    "with_system",
]
