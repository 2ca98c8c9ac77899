"""Every LLM request and embedding call, counted (and traced when tracing is on), whichever
provider serves it: :func:`awe.ai.llm.get_provider` and :func:`awe.ai.embeddings.get_embedder`
hand these wrappers out."""

from __future__ import annotations

import threading
import time
from pathlib import PurePath
from typing import Any

from awe.ai.llm.base import ChatProvider, ChatRequest, Completion, TokenSink
from awe.core import metrics, tracing

# A step may name its model from a template: the model label keeps the first few names seen in
# this process and calls the rest "other", so no input can grow the series without bound.
MAX_MODEL_LABELS = 16
_seen: set[str] = set()
_seen_lock = threading.Lock()


def model_label(model: str) -> str:
    """The label a model is counted under: its file name for a local model's path, and
    "other" once this process has counted ``MAX_MODEL_LABELS`` different models."""
    name = PurePath(model).name if "/" in model and model.endswith(".gguf") else model
    name = name[:80] or "default"
    with _seen_lock:
        if name in _seen:
            return name
        if len(_seen) < MAX_MODEL_LABELS:
            _seen.add(name)
            return name
    return "other"


class MeasuredProvider:
    """A chat provider whose requests are counted: requests, tokens in and out, latency."""

    def __init__(self, inner: ChatProvider) -> None:
        self.inner = inner
        self.name = inner.name

    def default_model(self) -> str:
        """The inner provider's default model."""
        return self.inner.default_model()

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """Complete ``request`` with the inner provider, and count it."""
        started = time.monotonic()
        model = model_label(request.model)
        with tracing.span(
            "llm.chat", {"gen_ai.system": self.name, "gen_ai.request.model": request.model}
        ) as span:
            try:
                completion = self.inner.chat(request, on_token)
            except Exception:
                metrics.LLM_REQUESTS.labels(self.name, model, "error").inc()
                raise
            finally:
                elapsed = time.monotonic() - started
                metrics.LLM_LATENCY.labels(self.name, model).observe(elapsed)
            span.set(
                {
                    "gen_ai.response.model": completion.model,
                    "gen_ai.usage.input_tokens": completion.prompt_tokens,
                    "gen_ai.usage.output_tokens": completion.completion_tokens,
                }
            )
        metrics.LLM_REQUESTS.labels(self.name, model, "ok").inc()
        metrics.LLM_TOKENS.labels(self.name, model, "in").inc(completion.prompt_tokens)
        metrics.LLM_TOKENS.labels(self.name, model, "out").inc(completion.completion_tokens)
        return completion

    def __getattr__(self, name: str) -> Any:
        # What only some providers have (listing and pulling models) passes through.
        return getattr(self.inner, name)


class MeasuredEmbedder:
    """An embedder whose calls and texts are counted by provider."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.provider: str = inner.provider
        self.model: str = inner.model
        self.parallel: bool = inner.parallel

    def passages(self, texts: list[str]) -> Any:
        """Embed passages with the inner embedder, and count them."""
        return self._counted("passages", texts)

    def query(self, text: str) -> Any:
        """Embed a query with the inner embedder, and count it."""
        return self._counted("query", text)

    def _counted(self, method: str, what: Any) -> Any:
        count = len(what) if isinstance(what, list) else 1
        with tracing.span(
            "embedding", {"awe.embedding.provider": self.provider, "awe.embedding.texts": count}
        ):
            result = getattr(self.inner, method)(what)
        metrics.EMBEDDING_CALLS.labels(self.provider).inc()
        metrics.EMBEDDING_TEXTS.labels(self.provider).inc(count)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
