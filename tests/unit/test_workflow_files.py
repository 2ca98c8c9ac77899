"""Workflow files: located errors (file:line:col), all at once, for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.engine.files import WorkflowFileInvalid, load_file, load_text
from awe.engine.models import WorkflowSpec
from awe.engine.registry import default_registry

KNOWN = default_registry.knows


def problems(text: str) -> list[str]:
    """The 'line:col: message' lines for ``text``, or [] if it is valid."""
    try:
        load_text(text, source="wf.yaml", known_kind=KNOWN)
    except WorkflowFileInvalid as exc:
        return [f"{p.line}:{p.col}: {p.message}" for p in exc.problems]
    return []


VALID = """\
name: ask-docs
inputs:
  question: {type: string, required: true}
  top_k: {type: integer, default: 4}
schedule: "0 3 * * *"
timezone: Europe/Paris
steps:
  - id: answer
    kind: noop
    needs: [search]
    with: {prompt: "{{ steps.search.output.q }} {{ inputs.top_k }}"}
  - id: search
    kind: noop
    with: {q: "{{ inputs.question }}"}
outputs:
  answer: "{{ steps.answer.output.prompt }}"
"""


def test_valid_file_gives_engine_spec() -> None:
    """A valid file (steps in any order) becomes the plain spec the engine runs."""
    spec = load_text(VALID, source="wf.yaml", known_kind=KNOWN)
    assert spec["name"] == "ask-docs"
    assert [s["id"] for s in spec["steps"]] == ["answer", "search"]
    assert spec["steps"][0]["needs"] == ["search"]
    assert type(spec["steps"][0]["with"]) is dict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: Bad\nsteps: [{id: a, kind: noop}]\n", "1:7: name must match"),
        ("name: x\nstep: []\n", "2:1: unknown key 'step' in the workflow (did you mean 'steps'?)"),
        ("name: x\nsteps: [{id: a, kind: lmm}]\n", "2:23: step 'a': unknown kind 'lmm'"),
        ("name: x\nsteps: [{id: 1a, kind: noop}]\n", "must be an identifier"),
        (
            "name: x\nsteps:\n- {id: a, kind: noop}\n- {id: a, kind: noop}\n",
            "4:8: duplicate step id 'a'",
        ),
        (
            "name: x\nsteps: [{id: a, kind: noop, needs: [b]}]\n",
            "needs 'b', which is not a step id",
        ),
        ("name: x\nsteps: [{id: a, kind: noop, timeout: -1}]\n", "timeout must be seconds > 0"),
        (
            "name: x\nsteps: [{id: a, kind: noop, retry: {jitter: 2}}]\n",
            "retry.jitter must be a fraction",
        ),
        ("name: x\nsteps: [{id: a, kind: noop, retry: {backoff: [-1]}}]\n", "retry.backoff"),
        (
            "name: x\nschedule: '* *'\nsteps: [{id: a, kind: noop}]\n",
            "2:11: schedule '* *' is not a cron",
        ),
        (
            "name: x\nschedule: '@daily'\ntimezone: Mars/Base\nsteps: [{id: a, kind: noop}]\n",
            "3:11: timezone",
        ),
        (
            "name: x\ninputs: {n: {type: integer, default: 1.5}}\nsteps: [{id: a, kind: noop}]\n",
            "default 1.5 is not of type integer",
        ),
        (
            "name: x\ninputs: {n: {type: int}}\nsteps: [{id: a, kind: noop}]\n",
            "type 'int' is not one of",
        ),
        (
            "name: x\nsteps: [{id: a, kind: noop, with: {v: '{{ inputs.nope }}'}}]\n",
            "inputs.nope is not a declared input",
        ),
        ("name: x\nsteps: [{id: a, kind: noop, with: {v: '{{ x }'}}]\n", "template syntax error"),
        (
            "name: x\nsteps: [{id: a, kind: noop, with: {v: '{{ item }}'}}]\n",
            "item is only defined in the with: of a step with for_each",
        ),
        (
            "name: x\nsteps:\n- {id: a, kind: noop}\n"
            "- {id: b, kind: noop, with: {v: '{{ steps.a.output }}'}}\n",
            "steps.a is not upstream (add it to needs)",
        ),
        (
            "name: x\nsteps:\n- {id: a, kind: noop, needs: [b]}\n"
            "- {id: b, kind: noop, needs: [a]}\n",
            "cycle: a -> b -> a",
        ),
        ("name: x\nname: y\nsteps: []\n", "2:1: YAML: duplicate key"),
        ("name: x\nsteps: [\n", "YAML: "),
        ("- just\n- a list\n", "1:1: the top level must be a mapping"),
        (
            "name: a\nsteps: [{id: a, kind: noop}]\n---\nname: b\n",
            "expected one YAML document, found 2",
        ),
        ("", "found no document"),
        (
            "name: x\nsteps: [{id: a, kind: shel}]\n",
            "2:23: step 'a': unknown kind 'shel' (did you mean 'shell'?)",
        ),
        ("name: x\nsteps: [{id: a, kind: zzz}]\n", "unknown kind 'zzz' (kinds: "),
        ("name: x\nsteps: [{id: a, kind: noop, for_each: 5}]\n", "for_each must be a list"),
        (
            "name: x\nsteps: [{id: a, kind: noop, for_each: [1], parallel: 0}]\n",
            "parallel must be an integer from 1 to 64",
        ),
        (
            "name: x\nsteps: [{id: a, kind: noop, parallel: 2}]\n",
            "parallel only applies to a step with for_each",
        ),
        ("name: x\nqueue: Big Jobs\nsteps: [{id: a, kind: noop}]\n", "2:8: queue must be a name"),
        ("name: x\nsteps: [{id: a, kind: noop, dry_run: true}]\n", "unknown key 'dry_run'"),
        (
            "name: x\ninputs: {my-input: {type: string}}\nsteps: [{id: a, kind: noop}]\n",
            "input name 'my-input' must be an identifier",
        ),
        (
            "name: x\nsteps: [{id: a, kind: noop, with: {v: '{{ 1 | uper }}'}}]\n",
            "unknown filter 'uper' (did you mean 'upper'?)",
        ),
        (
            "name: x\nsteps: [{id: a, kind: noop, with: {v: '{{ 1 is evn }}'}}]\n",
            "unknown test 'evn' (did you mean 'even'?)",
        ),
        (
            "name: x\nsteps: [{id: a, kind: workflow, with: {name: y}}]\n",
            "a workflow step needs with.workflow",
        ),
        ("name: x\ndescription: [a]\nsteps: [{id: a, kind: noop}]\n", "description must be text"),
    ],
)
def test_each_mistake_is_located(text: str, expected: str) -> None:
    """Each kind of mistake gets a located, specific message saying what would be right."""
    found = problems(text)
    assert any(expected in line for line in found), found


def test_all_problems_reported_together() -> None:
    """Several independent mistakes in one file are all reported, in file order."""
    text = "name: x\nsteps:\n- {id: a, kind: lmm}\n- {id: b, kind: noop, needs: [zz], timeout: 0}\n"
    found = problems(text)
    assert len(found) == 3
    assert found == sorted(found, key=lambda line: tuple(int(x) for x in line.split(":")[:2]))


def test_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    """A UTF-8 BOM and Windows line endings are accepted."""
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.replace("\n", "\r\n").encode())
    assert load_file(path, known_kind=KNOWN)["name"] == "ask-docs"


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are refused with a located message, not a traceback."""
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(WorkflowFileInvalid, match="not UTF-8"):
        load_file(path, known_kind=KNOWN)


def test_alias_bomb_is_refused_quickly() -> None:
    """A 'billion laughs' file is refused instead of being expanded."""
    lines = ["name: x", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    lines.append("steps: [{id: a, kind: noop}]")
    found = problems("\n".join(lines) + "\n")
    assert any("document too large" in line for line in found), found


def test_file_spec_is_a_valid_model_and_round_trips() -> None:
    """What a file gives validates as WorkflowSpec, and the model gives the same spec back."""
    spec = load_text(VALID, source="wf.yaml", known_kind=KNOWN)
    model = WorkflowSpec.model_validate(spec)
    assert model.inputs["question"].required is True
    assert model.steps[0].needs == ["search"]
    assert {k: v for k, v in model.to_spec().items() if k in spec} == {
        k: v for k, v in spec.items() if k in model.to_spec()
    }
