"""The AI commands as a user runs them: awe knowledge, awe pii scan, awe models."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import awe_env, run_awe
from tests.support.ai_standins import ollama_server
from tests.support.servers import free_port, http_server

SAMPLE = """\
Contact Jane at jane.doe@example.com or +1 (415) 555-2671.
Card on file: 4111 1111 1111 1111. Server: 10.2.3.4.
db = postgresql://app:hunter2hunter2@db:5432/app
"""


def test_knowledge_add_search_list_remove(tmp_path: Path) -> None:
    """add ingests a folder (refusing a lying file with exit 3), search finds, remove deletes."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "billing.md").write_text("Invoices are due thirty days after they are sent.\n")
    (docs / "garden.txt").write_text("Tomatoes need six hours of sun every day.\n")
    (docs / "fake.pdf").write_text("not a pdf")
    added = run_awe("knowledge", "add", "docs", "--json", home=tmp_path)
    assert added.returncode == 3, added.stderr
    assert "fake.pdf: the name says .pdf but the content is text/plain" in added.stderr
    report = json.loads(added.stdout)
    assert sorted(Path(d["name"]).name for d in report["documents"]) == ["billing.md", "garden.txt"]
    listed = json.loads(run_awe("knowledge", "list", "--json", home=tmp_path).stdout)
    assert {d["status"] for d in listed} == {"ready"}
    found = json.loads(
        run_awe(
            "knowledge", "search", "when must I pay?", "-k", "1", "--json", home=tmp_path
        ).stdout
    )
    assert Path(found[0]["document"]).name == "billing.md"
    assert found[0]["score"] > 0.5
    assert run_awe("knowledge", "remove", "docs/billing.md", home=tmp_path).returncode == 0
    left = json.loads(run_awe("knowledge", "list", "--json", home=tmp_path).stdout)
    assert [Path(d["name"]).name for d in left] == ["garden.txt"]
    missing = run_awe("knowledge", "remove", "nope.md", home=tmp_path)
    assert missing.returncode == 1
    assert "no document nope.md" in missing.stderr


def test_knowledge_reindex_after_version_change(tmp_path: Path) -> None:
    """With a new AWE_EMBEDDING_VERSION, reindex re-embeds every document as a run."""
    (tmp_path / "a.txt").write_text("The scheduler fires each cron time once.\n")
    assert run_awe("knowledge", "add", "a.txt", home=tmp_path).returncode == 0
    env = awe_env(tmp_path, AWE_EMBEDDING_VERSION="2")
    result = run_awe("knowledge", "reindex", "--json", home=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["documents"]) == 1
    listed = json.loads(run_awe("knowledge", "list", "--json", home=tmp_path, env=env).stdout)
    assert listed[0]["embedding_version"] == "2"
    again = json.loads(run_awe("knowledge", "reindex", "--json", home=tmp_path, env=env).stdout)
    assert again == {"run_id": None, "documents": []}


def test_pii_scan_json_offsets_and_gating(tmp_path: Path) -> None:
    """--json lists {type, start, end, text} by character offset; exit 0 unless gating."""
    path = tmp_path / "sample.txt"
    path.write_text(SAMPLE, encoding="utf-8")
    result = run_awe("pii", "scan", "sample.txt", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert [(f["type"], f["text"]) for f in findings] == [
        ("email", "jane.doe@example.com"),
        ("phone", "+1 (415) 555-2671"),
        ("credit_card", "4111 1111 1111 1111"),
        ("ip_address", "10.2.3.4"),
        ("url_credentials", "app:hunter2hunter2"),
    ]
    assert all(SAMPLE[f["start"] : f["end"]] == f["text"] for f in findings)
    gated = run_awe("pii", "scan", "sample.txt", "--fail-on-findings", home=tmp_path)
    assert gated.returncode == 1
    missing = run_awe("pii", "scan", "nope.txt", home=tmp_path)
    assert missing.returncode == 3
    assert "no such file" in missing.stderr


def test_models_list_and_pull_against_ollama(tmp_path: Path) -> None:
    """awe models lists the bundled model and Ollama's, and pulls through Ollama's API."""
    with http_server() as ollama:
        ollama_server(ollama)
        env = awe_env(tmp_path, AWE_OLLAMA_URL=ollama.url)
        listed = json.loads(run_awe("models", "list", "--json", home=tmp_path, env=env).stdout)
        assert {(m["provider"], m["name"]) for m in listed["models"]} == {
            ("local", "smollm2-135m-instruct"),
            ("ollama", "llama3.2:latest"),
        }
        pulled = run_awe("models", "pull", "llama3.2", home=tmp_path, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert "llama3.2: pulled" in pulled.stdout
        assert ollama.seen("/api/pull")[0].json() == {"model": "llama3.2", "stream": True}
    down = awe_env(tmp_path, AWE_OLLAMA_URL=f"http://127.0.0.1:{free_port()}")
    result = run_awe("models", "pull", "llama3.2", home=tmp_path, env=down)
    assert result.returncode == 1
    assert "ollama: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
