"""Every vector backend returns the same top results for the same data: the exact ones."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from awe.ai.embeddings import get_embedder
from awe.ai.vectors import choose_index
from awe.services import knowledge
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk
from tests.conftest import make_settings
from tests.integration.conftest import Drain

SENTENCES = [
    "The invoice is due thirty days after it is sent.",
    "Refunds are paid back to the card used for the purchase.",
    "Workers renew their leases with a heartbeat every few seconds.",
    "A step that runs out of attempts goes to the dead-letter queue.",
    "Tomatoes need six hours of sun a day.",
    "Water the basil in the morning, not at night.",
    "PostgreSQL runs the queue across many machines.",
    "SQLite keeps everything in one file on one machine.",
    "Passwords are hashed with Argon2id before they are stored.",
    "An API token can be revoked at any time.",
    "The scheduler fires cron schedules once per fire time.",
    "Backups are restored with one command.",
]
QUERIES = [
    "when do I have to pay",
    "garden plants",
    "how is the queue stored",
    "security of logins",
]


def exact_top(database: Database, query: np.ndarray, k: int) -> list[str]:
    """The true top-k chunk texts, by brute force over every stored vector."""
    with database.read() as conn:
        rows = conn.execute(select(Chunk.text, Chunk.embedding)).all()
    scores = np.vstack([r.embedding for r in rows]) @ query
    return [rows[i].text for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize(
    ("backend", "vector_backend"),
    [
        ("sqlite", "sqlite-vec"),
        ("sqlite", "numpy"),
        ("sqlite", "qdrant"),
        pytest.param("postgres", "pgvector", marks=pytest.mark.postgres),
        pytest.param("postgres", "numpy", marks=pytest.mark.postgres),
    ],
    indirect=["backend"],
)
def test_backend_returns_the_exact_top_results(
    backend: str, vector_backend: str, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """Ingested with the backend in use, each query's top 3 equal the brute-force top 3."""
    settings = make_settings(
        tmp_path, vector_backend=vector_backend, rag_chunk_size=100, rag_chunk_overlap=0
    )
    path = tmp_path / "facts.txt"
    path.write_text("\n\n".join(SENTENCES) + "\n", encoding="utf-8")
    knowledge.add(database, settings, [path])
    drain(settings=settings)
    assert choose_index(database, settings).name == vector_backend
    embedder = get_embedder(settings)
    for query in QUERIES:
        found = knowledge.search(database, settings, query, top_k=3)
        assert [c.text for c in found] == exact_top(database, embedder.query(query), 3), query
        assert all(a.score >= b.score for a, b in itertools.pairwise(found))
