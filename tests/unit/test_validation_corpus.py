"""A corpus of realistic broken workflow files (tests/unit/corpus): each problem of each file is
reported at its line and column with the words its ``# expect`` comments give, all of them in
one check, and none is hidden by another."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from awe.engine.files import WorkflowFileInvalid, load_file, load_text
from awe.engine.registry import default_registry

CORPUS = Path(__file__).parent / "corpus"
EXPECT = re.compile(r"^# expect (\d+):(\d+): (.+)$", re.M)


def problems_of(path: Path) -> list[str]:
    """Every problem the checker reports for ``path``, as 'line:col: message'."""
    with pytest.raises(WorkflowFileInvalid) as caught:
        load_file(path, known_kind=default_registry.knows, known_secrets=set())
    return [f"{p.line}:{p.col}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_mistake_is_located_and_explained(path: Path) -> None:
    """Every expected problem is reported where the file says, in the words it says."""
    expected = EXPECT.findall(path.read_text(encoding="utf-8"))
    assert expected, f"{path.name} has no '# expect LINE:COL: words' comment"
    found = problems_of(path)
    for line, col, words in expected:
        assert any(p.startswith(f"{line}:{col}: ") and words in p for p in found), (
            f"{path.name}: no problem at {line}:{col} with {words!r}; found {found}"
        )


def test_a_deeply_nested_flow_is_refused_quickly_with_its_position() -> None:
    """Thousands of nested brackets are refused before the YAML parser recurses into them."""
    text = "name: deep\nsteps: " + "[" * 5000 + "]" * 5000 + "\n"
    started = time.monotonic()
    with pytest.raises(WorkflowFileInvalid) as caught:
        load_text(text, source="deep.yaml", known_kind=default_registry.knows)
    assert time.monotonic() - started < 1
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (2, 48)
    assert "nested deeper than 40 levels" in problem.message


def test_known_secrets_are_accepted() -> None:
    """A secret the project has is fine, interpolated as it is, inside a longer string too."""
    text = (
        "name: ok\nsteps:\n  - id: a\n    kind: http\n"
        '    with: {url: "https://x.example/?k={{ secrets.KEY }}",'
        ' headers: {A: "{{ secrets.KEY }}"}}\n'
    )
    spec = load_text(
        text, source="ok.yaml", known_kind=default_registry.knows, known_secrets={"KEY"}
    )
    assert spec["steps"][0]["with"]["headers"] == {"A": "{{ secrets.KEY }}"}
