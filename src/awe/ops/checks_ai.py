"""Doctor checks of the AI layer: every configured LLM provider answers (the local model loads
and writes a token; a remote one answers), and the embedder turns a text into a vector."""

from __future__ import annotations

from awe.ai.embeddings import get_embedder
from awe.ai.llm import ChatRequest, get_provider
from awe.core.config import Settings
from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, failed, passed


def configured(settings: Settings) -> list[str]:
    """The LLM providers this installation is set up to use: the default one first, then each
    other one given settings of its own (a key, a server URL, a model file) that are not the
    embedding provider's (the embedder check asks that one)."""
    defaults = Settings.model_fields
    embeds = settings.embedding_provider  # a key or URL that may be there for embeddings only
    chosen = {
        "local": settings.llm_model_path is not None,
        "ollama": settings.ollama_url != defaults["ollama_url"].default and embeds != "ollama",
        "openai": bool(settings.openai_api_key or settings.openai_base_url) and embeds != "openai",
        "anthropic": bool(settings.anthropic_api_key or settings.anthropic_base_url),
    }
    return [settings.llm_provider] + [
        name for name, set_up in chosen.items() if set_up and name != settings.llm_provider
    ]


def _fix(name: str) -> str:
    if name == "local":
        return "awe models pull (or set AWE_LLM_MODEL_PATH to a .gguf file)"
    return f"check the {name} server and its key (AWE_{name.upper()}_*)"


def _ask(name: str, settings: Settings) -> tuple[bool, str]:
    """Whether provider ``name`` writes a few tokens for a one-word prompt, and what it did."""
    try:
        provider = get_provider(name, settings)
        model = provider.default_model()
        answer = provider.chat(
            ChatRequest(
                messages=[{"role": "user", "content": "Say OK."}], model=model, max_tokens=4, seed=1
            )
        )
    except Exception as exc:  # noqa: BLE001 - whatever the provider raised is the finding
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return False, f"{name} did not answer: {message}"
    return True, f"{name} model {model} answered ({answer.completion_tokens} token(s))"


def llm(ctx: Context) -> Outcome:
    """Every configured provider writes a few tokens for a one-word prompt."""
    names = configured(ctx.settings)
    results = {name: _ask(name, ctx.settings) for name in names}
    data = {"providers": {name: {"ok": ok, "message": m} for name, (ok, m) in results.items()}}
    bad = [name for name, (ok, _) in results.items() if not ok]
    if bad:
        return failed(
            "; ".join(results[name][1] for name in bad)
            + (f" ({len(names) - len(bad)} other(s) answered)" if len(bad) < len(names) else ""),
            "; ".join(_fix(name) for name in bad),
            **data,
        )
    return passed("; ".join(m for _, m in results.values()), **data)


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
    Probe("ai.llm", "ai", "the configured LLM providers answer", llm),
    Probe("ai.embedder", "ai", "the embedder makes vectors", embedder),
]
