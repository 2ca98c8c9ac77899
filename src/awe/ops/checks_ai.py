"""Doctor checks of the AI layer: the default LLM answers (the local model loads and writes a
token; a remote one answers), and the embedder turns a text into a vector."""

from __future__ import annotations

from awe.ai.embeddings import get_embedder
from awe.ai.llm import ChatRequest, get_provider
from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, failed, passed


def llm(ctx: Context) -> Outcome:
    """The default provider writes a few tokens for a one-word prompt."""
    settings = ctx.settings
    provider = get_provider(None, settings)
    model = provider.default_model()
    request = ChatRequest(
        messages=[{"role": "user", "content": "Say OK."}], model=model, max_tokens=4, seed=1
    )
    try:
        answer = provider.chat(request)
    except Exception as exc:  # noqa: BLE001 - whatever the provider raised is the finding
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        fix = (
            "awe models pull (or set AWE_LLM_MODEL_PATH to a .gguf file)"
            if settings.llm_provider == "local"
            else f"check the {settings.llm_provider} server and its key"
        )
        return failed(f"{settings.llm_provider} model {model} did not answer: {message}", fix)
    return passed(
        f"{settings.llm_provider} model {model} answered ({answer.completion_tokens} token(s))",
        provider=settings.llm_provider,
        model=model,
    )


def embedder(ctx: Context) -> Outcome:
    """The embedder makes a vector of one text."""
    settings = ctx.settings
    try:
        vectors = get_embedder(settings).query("awe doctor")
    except Exception as exc:  # noqa: BLE001 - whatever the provider raised is the finding
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return failed(
            f"the {settings.embedding_provider} embedder failed: {message}",
            "check AWE_EMBEDDING_PROVIDER and AWE_EMBEDDING_MODEL",
        )
    dimension = int(vectors.shape[-1])
    return passed(
        f"{settings.embedding_provider} embeddings, {dimension} dimensions", dimension=dimension
    )


PROBES = [
    Probe("ai.llm", "ai", "the default LLM answers", llm),
    Probe("ai.embedder", "ai", "the embedder makes vectors", embedder),
]
