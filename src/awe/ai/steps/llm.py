"""Step kind ``llm``: one chat completion from any provider, streamed into the run's events.

``with: {provider, model, system, prompt | messages, temperature, max_tokens, json_schema,
stop, seed, repeat_penalty}``. Generated text is written to the run's events as ``tokens``
events, coalesced (a few per second, not one per token). With ``json_schema`` the answer must
be JSON matching it: a mismatch is put back to the model once with the error; a second mismatch
fails the step (``validation``, not retried). The output has the text (and ``json``), usage
and latency.
"""

from __future__ import annotations

import json
import time
from typing import Any

from awe.ai.llm import ChatRequest, Completion, get_provider, with_system
from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepTimeout
from awe.engine.registry import step_kind

KEYS = frozenset(
    {
        "provider",
        "model",
        "system",
        "prompt",
        "messages",
        "temperature",
        "max_tokens",
        "json_schema",
        "stop",
        "seed",
        "repeat_penalty",
    }
)
ROLES = frozenset({"system", "user", "assistant"})
FLUSH_SECONDS = 0.25
FLUSH_CHARS = 400


class TokenStream:
    """Receives streamed text: coalesces it into events, reports progress, stops on cancel."""

    def __init__(self, ctx: StepContext, max_tokens: int) -> None:
        self.ctx = ctx
        self.max_tokens = max_tokens
        self.pieces = 0
        self.first_at: float | None = None
        self._buffer: list[str] = []
        self._size = 0
        self._last = time.monotonic()

    def __call__(self, text: str) -> None:
        """One streamed piece; raises StepCancelled or StepTimeout to stop generation."""
        self.ctx.check()
        remaining = self.ctx.remaining()
        if remaining is not None and remaining <= 0:
            raise StepTimeout(self.ctx.timeout or 0)
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.pieces += 1
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= FLUSH_CHARS or time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one ``tokens`` event, with progress."""
        if not self._buffer:
            return
        self.ctx.emit("tokens", "info", "".join(self._buffer), {"pieces": self.pieces})
        self.ctx.progress(min(1.0, self.pieces / max(1, self.max_tokens)))
        self._buffer, self._size, self._last = [], 0, time.monotonic()


def parse(params: Any) -> dict[str, Any]:
    """Check an llm step's parameters; ValidationFailed naming each problem."""
    if not isinstance(params, dict):
        raise ValidationFailed("llm needs with: {prompt: …} or with: {messages: […]}")
    problems = [f"with.{k} is not an llm parameter" for k in params if k not in KEYS]
    prompt, messages = params.get("prompt"), params.get("messages")
    if (prompt is None) == (messages is None):
        problems.append("give with.prompt (text) or with.messages (a list), one of them")
    if prompt is not None and not isinstance(prompt, str):
        problems.append("with.prompt must be text")
    if messages is not None and (
        not isinstance(messages, list)
        or not all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        problems.append("with.messages must be a list of {role: system|user|assistant, content}")
    temperature = params.get("temperature", 0.2)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        problems.append(f"with.temperature must be a number, not {temperature!r}")
    penalty = params.get("repeat_penalty", 1.1)
    if isinstance(penalty, bool) or not isinstance(penalty, int | float) or penalty <= 0:
        problems.append(f"with.repeat_penalty must be a number > 0, not {penalty!r}")
    max_tokens = params.get("max_tokens", 256)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        problems.append(f"with.max_tokens must be an integer >= 1, not {max_tokens!r}")
    stop = params.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]  # one stop sequence, not a list of its characters
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        problems.append(f"with.stop must be a string or a list of strings, not {stop!r}")
    schema = params.get("json_schema")
    if schema is not None:
        import jsonschema  # only for steps with a schema (awe validate need not load it)

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            problems.append(f"with.json_schema is not a JSON schema: {exc.message}")
    if problems:
        raise ValidationFailed("llm: " + "; ".join(problems))
    conversation: list[dict[str, str]] = (
        messages if messages is not None else [{"role": "user", "content": str(prompt)}]
    )
    return {
        "messages": with_system(params.get("system"), list(conversation)),
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "json_schema": schema,
        "stop": list(stop),
        "seed": params.get("seed"),
        "repeat_penalty": float(penalty) if isinstance(penalty, int | float) else 1.1,
    }


@step_kind(keys=KEYS)
def run_llm(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Complete the chat; the output is the answer, its JSON when a schema was given, and cost."""
    options = parse(params)
    provider = get_provider(params.get("provider"), ctx.settings)
    model = str(params.get("model") or provider.default_model())
    request = ChatRequest(model=model, **options)
    started = time.monotonic()
    stream = TokenStream(ctx, request.max_tokens)
    completion = provider.chat(request, on_token=stream)
    stream.flush()
    usage = [completion]
    parsed: Any = None
    if request.json_schema is not None:
        parsed, problem = _check_json(completion.text, request.json_schema)
        if problem is not None:
            ctx.log(
                f"answer did not match the schema ({problem}); asking once more", level="warning"
            )
            again = _ask_again(request, completion.text, problem)
            completion = provider.chat(again, on_token=stream)
            stream.flush()
            usage.append(completion)
            parsed, problem = _check_json(completion.text, request.json_schema)
            if problem is not None:
                raise ValidationFailed(
                    f"llm: the answer does not match with.json_schema: {problem}"
                )
    return _output(ctx, provider.name, model, completion, usage, started, stream, parsed)


def _check_json(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    import jsonschema

    try:
        value = json.loads(_strip_fences(text))
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return value, f"{exc.message} (at {where})"
    return value, None


def _strip_fences(text: str) -> str:
    """Models like to wrap JSON in ```json fences; take what is inside."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[-1].rsplit("```", 1)[0]
    return stripped.strip()


def _ask_again(request: ChatRequest, answer: str, problem: str) -> ChatRequest:
    messages = [
        *request.messages,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That answer is wrong: {problem}. Reply again with only JSON that "
            f"matches this schema: {json.dumps(request.json_schema)}",
        },
    ]
    return ChatRequest(**{**request.__dict__, "messages": messages})


def _output(
    ctx: StepContext,
    provider: str,
    model: str,
    completion: Completion,
    usage: list[Completion],
    started: float,
    stream: TokenStream,
    parsed: Any,
) -> dict[str, Any]:
    elapsed = time.monotonic() - started
    prompt_tokens = sum(c.prompt_tokens for c in usage)
    completion_tokens = sum(c.completion_tokens for c in usage)
    generating = elapsed - ((stream.first_at or started) - started)
    output: dict[str, Any] = {
        "text": completion.text,
        "provider": provider,
        "model": completion.model or model,
        "finish_reason": completion.finish_reason,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "latency_ms": round(elapsed * 1000, 1),
        "time_to_first_token_ms": (
            round(((stream.first_at or started) - started) * 1000, 1) if stream.first_at else None
        ),
        "tokens_per_second": round(completion_tokens / generating, 1) if generating > 0 else None,
    }
    if parsed is not None:
        output["json"] = parsed
    ctx.emit(
        "llm",
        "info",
        f"{provider} {output['model']}: {completion_tokens} tokens in {output['latency_ms']} ms",
        {"usage": output["usage"], "latency_ms": output["latency_ms"], "model": output["model"]},
    )
    return output
