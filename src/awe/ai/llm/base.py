"""What every LLM provider takes and gives back, whatever it runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Called with each piece of generated text as it arrives.
TokenSink = Callable[[str], None]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: messages ({role, content}), sampling, and an optional JSON schema."""

    messages: list[dict[str, str]]
    model: str
    temperature: float = 0.2
    max_tokens: int = 256
    json_schema: dict[str, Any] | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: Above 1 discourages repeating itself (local and ollama; small models loop without it).
    repeat_penalty: float = 1.1


@dataclass(frozen=True)
class Completion:
    """What the model said, and what it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class ChatProvider(Protocol):
    """A provider that completes chats; remote ones also list and pull models when they can."""

    name: str

    def default_model(self) -> str:
        """The model used when a step names none."""
        ...

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """Complete ``request``; call ``on_token`` per streamed piece when given."""
        ...


def with_system(system: str | None, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with ``system`` as the first message, when given."""
    return ([{"role": "system", "content": system}] if system else []) + messages
