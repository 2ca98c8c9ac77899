"""What the web UI draws: the DAG's layered layout, the timeline of attempts, highlighted
YAML that stays escaped, PII placeholders marked, and the redirect targets it accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from awe.engine.records import EventRecord, StepRecord
from awe.web import dag
from awe.web.render import highlighted
from awe.web.session import safe_next
from awe.web.source import highlight_yaml, located
from awe.web.timeline import timeline


def crossings(layout: dag.Layout) -> int:
    """How many pairs of edges between the same two layers cross."""
    ends = [(layout.node(e.source), layout.node(e.target)) for e in layout.edges]
    count = 0
    for i, (a1, b1) in enumerate(ends):
        for a2, b2 in ends[i + 1 :]:
            same = a1.layer == a2.layer and b1.layer == b2.layer
            if same and (a1.y - a2.y) * (b1.y - b2.y) < 0:
                count += 1
    return count


def test_layers_follow_the_longest_path() -> None:
    """A step sits one layer past its deepest need; steps without needs are in the first."""
    found = dag.layers({"a": [], "b": ["a"], "c": ["a", "b"], "d": [], "e": ["c", "d"]})
    assert found == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 3}


def test_ordering_removes_the_crossings_the_workflow_order_makes() -> None:
    """Listed so that their edges cross (y1 needs x2, y2 needs x1: drawn in this order they
    would cross), the layout puts each step level with its need: no edge crosses another."""
    needs = {"x1": [], "x2": [], "y1": ["x2"], "y2": ["x1"]}
    layout = dag.layout(needs)
    assert crossings(layout) == 0
    assert len(layout.edges) == 2
    assert all(e.path.startswith("M") and " C" in e.path for e in layout.edges)


def test_a_wide_fan_out_fits_its_tallest_layer() -> None:
    """One source and 40 children: two layers, the drawing as tall as the 40."""
    needs: dict[str, list[str]] = {"root": [], **{f"c{i}": ["root"] for i in range(40)}}
    layout = dag.layout(needs)
    assert {n.layer for n in layout.nodes} == {0, 1}
    assert layout.height >= 40 * dag.NODE_HEIGHT
    assert len({(n.x, n.y) for n in layout.nodes}) == 41  # no two boxes in one place


def test_needs_naming_no_step_and_cycles_do_not_break_the_layout() -> None:
    """A need that names nothing is ignored; a cycle (validation refuses them) still ends."""
    assert dag.layers({"a": ["ghost"]}) == {"a": 0}
    found = dag.layers({"a": ["b"], "b": ["a"]})
    assert set(found) == {"a", "b"}


def _step(key: str) -> StepRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return StepRecord(
        id=key, run_id="r", step_key=key, kind="noop", status="succeeded", needs=[],
        queue="default", priority=0, attempt=1, tries=1, max_attempts=3, input={}, output={},
        error_category=None, error_message=None, errors=[], lease_owner=None, run_after=None,
        started_at=now, finished_at=now, created_at=now,
    )  # fmt: skip


def _state(seq: int, key: str, status: str, second: float) -> EventRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
    return EventRecord(seq, "r", seq, key, "state", "info", "", {"status": status}, at)


def test_the_timeline_draws_each_attempt_and_the_wait_between() -> None:
    """A step that failed, waited and succeeded has a failed bar, a wait, and a success bar,
    in that order along the axis; the axis spans the first start to the last end."""
    events = [
        _state(1, "a", "running", 0),
        _state(2, "a", "retrying", 1),
        _state(3, "a", "running", 3),
        _state(4, "a", "succeeded", 4),
        _state(5, "b", "running", 4),
        _state(6, "b", "succeeded", 5),
    ]
    drawn = timeline([_step("a"), _step("b")], events)
    assert drawn.seconds == pytest.approx(5)
    bars = sorted(drawn.rows[0].bars, key=lambda b: b.x)
    assert [b.kind for b in bars] == ["try", "wait", "succeeded"]
    assert bars[0].x < bars[1].x < bars[2].x
    assert [b.kind for b in drawn.rows[1].bars] == ["succeeded"]


def test_yaml_is_escaped_while_it_is_highlighted() -> None:
    """Markup in a workflow's values and comments is shown as text, never as HTML."""
    lines = highlight_yaml('name: "<script>alert(1)</script>" # <b>x</b>\n')
    html = str(lines[0])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;" in html
    assert '<span class="k">name</span>' in html


def test_problems_sit_under_their_lines() -> None:
    """Each problem goes with its line; one past the end goes on the last line."""
    from awe.engine.files import Problem

    lines = located("a: 1\nb: 2\n", [Problem(2, 4, "bad"), Problem(9, 1, "late")])
    assert [len(line.problems) for line in lines] == [0, 2]


def test_pii_placeholders_are_marked_and_everything_else_escaped() -> None:
    """``<EMAIL_1>`` is marked; a real tag next to it stays text."""
    html = str(highlighted("mail <EMAIL_1> or <img src=x onerror=alert(1)> <PHONE_ab12cd34>"))
    assert '<mark class="pii">&lt;EMAIL_1&gt;</mark>' in html
    assert '<mark class="pii">&lt;PHONE_ab12cd34&gt;</mark>' in html
    assert "<img" not in html


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs?status=failed", "/runs?status=failed"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("runs", "/"),
        ("", "/"),
    ],
)
def test_only_paths_on_this_site_are_redirect_targets(target: str, expected: str) -> None:
    """A redirect after logging in goes to a path here, or home."""
    assert safe_next(target) == expected
