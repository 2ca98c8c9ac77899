"""The Python builder gives the same spec as the equivalent file, and the same errors."""

from __future__ import annotations

import pytest

from awe.engine.builder import ITEM, Workflow
from awe.engine.files import WorkflowFileInvalid, load_text
from awe.engine.registry import default_registry

FILE = """\
name: nightly
description: Check hosts, then report
schedule: "0 3 * * *"
timezone: Europe/Paris
inputs:
  hosts: {type: array, default: [a, b]}
  notify: {type: boolean, default: false}
steps:
  - id: ping
    kind: shell
    for_each: "{{ inputs.hosts }}"
    retry: {max_attempts: 3, backoff: [1, 5], jitter: 0.1}
    timeout: 30
    with: {command: "echo {{ item }}"}
  - id: report
    kind: noop
    needs: [ping]
    when: "{{ inputs.notify }}"
    on_failure: continue
    with: {count: "{{ steps.ping.output | length }}"}
outputs:
  report: "{{ steps.report.output }}"
"""


def build() -> Workflow:
    """The workflow of FILE, built in Python."""
    wf = Workflow(
        "nightly",
        description="Check hosts, then report",
        schedule="0 3 * * *",
        timezone="Europe/Paris",
    )
    hosts = wf.input("hosts", "array", default=["a", "b"])
    notify = wf.input("notify", "boolean", default=False)
    ping = wf.step(
        "ping",
        "shell",
        for_each=hosts,
        retry={"max_attempts": 3, "backoff": [1, 5], "jitter": 0.1},
        timeout=30,
        with_={"command": f"echo {ITEM}"},
    )
    report = wf.step(
        "report",
        "noop",
        needs=[ping],
        when=notify,
        on_failure="continue",
        with_={"count": ping.output.filter("length")},
    )
    wf.output("report", report.output)
    return wf


def test_builder_equals_file() -> None:
    """build() returns exactly the spec that loading the same workflow from YAML returns."""
    from_file = load_text(FILE, source="nightly.yaml", known_kind=default_registry.knows)
    assert build().build() == from_file


def test_builder_yaml_round_trips() -> None:
    """to_yaml() is a valid workflow file with the same spec."""
    wf = build()
    again = load_text(wf.to_yaml(), source="x.yaml", known_kind=default_registry.knows)
    assert again == wf.build()


def test_references_render_as_templates() -> None:
    """Input, output and item references become the template strings a file would hold."""
    wf = Workflow("refs")
    who = wf.input("who")
    step = wf.step("a", "noop")
    assert str(who) == "{{ inputs.who }}"
    assert f"hi {step.output.text}" == "hi {{ steps.a.output.text }}"
    assert str(step.output["key"]) == "{{ steps.a.output['key'] }}"
    assert str(ITEM.name.filter("upper")) == "{{ item.name | upper }}"


def test_builder_errors_are_the_file_checks() -> None:
    """A bad need and an undeclared input are reported together, with did-you-mean hints."""
    wf = Workflow("broken")
    wf.input("who")
    first = wf.step("first", "noop")
    wf.step("second", "noop", needs=["frist"], with_={"x": "{{ inputs.whom }}"})
    assert first.id == "first"
    with pytest.raises(WorkflowFileInvalid) as caught:
        wf.build()
    text = caught.value.message
    assert "needs 'frist', which is not a step id (did you mean 'first'?)" in text
    assert "inputs.whom is not a declared input (did you mean 'who'?)" in text
    assert text.startswith("<workflow broken>:")
