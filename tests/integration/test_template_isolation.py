"""Templates that are not plain render in a child process: it holds none of the worker's
settings or secrets, it is killed when late and replaced, and the great majority of templates
(plain ones) never need it."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import threading
import time
from pathlib import Path

import pytest

from awe.engine import template_child
from awe.engine.errors import StepError
from awe.engine.secret_refs import SecretRefs
from awe.engine.template_plain import is_plain
from awe.engine.template_reads import Pruned, reads
from awe.engine.templating import render

STALL = (
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
    "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}"
)


def test_the_template_process_inherits_no_settings_or_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started while the worker's environment holds the admin token, a provider key and the
    database URL, the child's own environment (read from /proc) holds none of them: only what
    starting Python needs."""
    monkeypatch.setenv("AWE_ADMIN_TOKEN", "admin-token-that-must-not-leak-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    monkeypatch.setenv("AWE_DATABASE_URL", "postgresql://u:p@db/awe")
    child = template_child._Child(time.monotonic() + template_child.STARTUP_SECONDS)
    try:
        raw = Path(f"/proc/{child.process.pid}/environ").read_bytes()
    finally:
        child.kill()
    names = {entry.split(b"=", 1)[0].decode() for entry in raw.split(b"\0") if entry}
    assert names <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH"}, names
    assert b"must-not-leak" not in raw
    assert b"postgresql://" not in raw


def test_a_late_child_is_killed_and_the_next_template_gets_a_new_one() -> None:
    """A comparison that would run for years in one C call fails as too costly once its time
    (and a second's grace) is up; the child that ran it has been killed and reaped, is no longer
    in the pool, and the next template renders at once in another."""
    render("{% if true %}warm{% endif %}", {}, where="warm")
    ran = template_child._idle[-1]  # the next template takes the child last given back
    started = time.monotonic()
    with pytest.raises(StepError) as failed:
        render(STALL, {}, where="step s: with.v")
    took = time.monotonic() - started
    assert "too costly: rendering took longer than 0.5 s" in failed.value.message
    assert failed.value.category == "validation"
    assert took < 1.5 + 2  # its half second, the grace, and the kill
    assert ran.process.returncode == -signal.SIGKILL
    assert ran not in template_child._idle
    assert render("{% if true %}{{ 6 * 7 }}{% endif %}", {}, where="after") == "42"
    assert template_child._idle[-1] is not ran


def test_templates_render_apart_with_more_than_a_thousand_descriptors_open() -> None:
    """In a process holding 1,100 open files (a busy API), a template still renders in its
    child, and one that is late is still stopped: waiting for the answer does not depend on
    descriptor numbers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        template_child._stop_all()  # new children: their pipes get numbers above 1024
        assert render("{% if true %}{{ 'x' ~ 'y' }}{% endif %}", {}, where="many") == "xy"
        with pytest.raises(StepError, match="too costly"):
            render(STALL, {}, where="many")
    finally:
        for descriptor in opened:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_plain_template_over_much_data_renders_apart() -> None:
    """A plain template whose cost is quadratic at worst (a set of 20,000 numbers whose hashes
    all collide, about ten seconds) reading more than the engine renders itself: it renders in
    the template process, which is stopped when its time is up, not in the engine's."""
    colliding = [k * (2**61 - 1) for k in range(20000)]
    started = time.monotonic()
    with pytest.raises(StepError, match=r"too costly: rendering took longer than 0\.5 s"):
        render("{{ inputs.x | unique | list | length }}", {"inputs": {"x": colliding}}, where="u")
    assert time.monotonic() - started < 1.5 + 2
    assert render("{{ inputs.x | length }}", {"inputs": {"x": colliding}}, where="u") == 20000


def test_a_child_outlives_the_thread_that_started_it() -> None:
    """A child started for a template rendered on a short-lived thread (an API request's) is
    still alive once that thread has ended, and the next template, on another thread, uses it."""
    template_child._stop_all()
    thread = threading.Thread(
        target=render, args=("{% if true %}a{% endif %}", {}), kwargs={"where": "t"}
    )
    thread.start()
    thread.join()
    started = template_child._idle[-1]
    time.sleep(0.2)
    assert started.process.poll() is None
    assert render("{% if true %}b{% endif %}", {}, where="main") == "b"
    assert template_child._idle[-1] is started


def test_a_template_reads_only_the_outputs_it_names() -> None:
    """Beside 60 MB of other steps' outputs, a template naming one small value renders in a
    few milliseconds, in the engine or in the template process: neither measures nor sends
    what it does not read."""
    context = {
        "inputs": {"name": "ada"},
        "steps": {
            "big": {"output": {"text": "x" * (60 * 1024 * 1024)}},
            "small": {"output": {"n": 3}},
        },
    }
    render("{% if true %}warm{% endif %}", {}, where="warm")
    started = time.monotonic()
    assert render("{{ inputs.name }}", context, where="plain") == "ada"
    assert (
        render(
            "{% if steps.small.output.n > 2 %}{{ inputs.name }}{% endif %}", context, where="apart"
        )
        == "ada"
    )
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ steps.a.output }}", {"steps": {"a": {"output": {"k": [1, 2]}}}}),
        ("{{ steps['a'].output.k[1] }}", {"steps": {"a": {"output": {"k": [1, 2]}}}}),
        ("{{ steps[inputs.which].output }}", {"steps": "whole", "inputs": {"which": "b"}}),
        ("{% for s in steps %}{{ s }}{% endfor %}", {"steps": "whole"}),
        ("{{ inputs.items() | list }}", {"inputs": "whole"}),
        ("{{ steps['values']() | list }}", {"steps": "whole"}),  # the method, not a key
        ("{{ steps.a.output.keys() | list }}", {"steps": {"a": {"output": {"k": [1, 2]}}}}),
        ("{{ steps | tojson }}", {"steps": "whole"}),
        ("{{ steps.nope.output }}", {"steps": {}}),
    ],
)
def test_what_a_template_reads_is_all_it_gets(template: str, expected: dict[str, object]) -> None:
    """Constant paths narrow what a template gets to what they reach; a computed key, a loop,
    a method or a filter over the name gives the whole value; a path to nothing gives nothing
    (the template then fails as it would have)."""
    context = {
        "steps": {"a": {"output": {"k": [1, 2]}}, "b": {"output": "B"}},
        "inputs": {"which": "b", "items": "not the method"},
    }
    read = reads(template)
    assert read is not None
    taken = Pruned()
    got = {name: taken.take(context[name], paths) for name, paths in read if name in context}
    assert got == {k: context[k] if v == "whole" else v for k, v in expected.items()}


def test_the_template_process_never_answers_from_other_data() -> None:
    """Two contexts whose values are the same objects (True) under different keys are
    different data: each template renders from its own, one after the other in one child."""
    template = (
        "{% if inputs.dry_run is defined %}--dry-run{% endif %}"
        "{% if inputs.verbose is defined %} -v{% endif %}"
    )
    assert render(template, {"inputs": {"dry_run": True}}, where="a") == "--dry-run"
    assert render(template, {"inputs": {"verbose": True}}, where="b") == " -v"
    assert render(template, {"inputs": {}}, where="c") == ""
    assert render("{% if inputs is defined %}yes{% endif %}", {}, where="d") == ""


def test_templates_that_alternate_over_one_pass_data_hand_it_over_once_each() -> None:
    """Ten items rendering two templates that read different parts of the same outputs send
    each part to the child once, not once per template."""
    template_child._stop_all()
    steps = {"a": {"output": list(range(100))}, "b": {"output": "B"}}
    for item in range(10):
        context = {"steps": steps, "item": item}
        assert render("{% if true %}{{ steps.a.output[item] }}{% endif %}", context, where="x")
        assert render("{% if true %}{{ steps.b.output }}{% endif %}", context, where="y") == "B"
    (child,) = template_child._idle
    assert child._tokens == 2


def test_secrets_have_no_other_attributes_in_either_place() -> None:
    """``secrets.nonce`` is a reference to a secret named nonce, in the engine and in the
    template process alike: the references' own state is out of a template's reach."""
    tagger = hashlib.sha256
    here = render(
        "{{ secrets.nonce }}",
        {"secrets": SecretRefs(lambda t: tagger(t.encode()).hexdigest(), "s1")},
        where="here",
    )
    apart = render(
        "{% if true %}{{ secrets.nonce }}{% endif %}",
        {"secrets": SecretRefs(lambda t: tagger(t.encode()).hexdigest(), "s1")},
        where="apart",
    )
    assert str(here).startswith("[[secret:nonce:")
    assert str(apart).startswith("[[secret:nonce:")


@pytest.mark.parametrize(
    ("template", "plain"),
    [
        ("{{ inputs.name }}", True),
        ("{{ steps.fetch.output.items | map(attribute='id') | join(', ') }}", True),
        ("{{ 'yes' if steps.check.status == 'succeeded' else 'no' }}", True),
        ("https://{{ inputs.host }}/{{ item.path | urlencode }}", True),
        ("{{ inputs.n + 1 }}", True),
        ("{{ inputs.a ~ inputs.b ~ inputs.c ~ inputs.d ~ inputs.e }}", False),  # five reads
        ("{% if inputs.x %}a{% endif %}", False),  # a statement
        ("{{ [inputs.x, inputs.x] }}", False),  # a literal
        ("{{ inputs.x.upper() }}", False),  # a call
        ("{{ inputs.x * 3 }}", False),  # a repetition
        ("{{ '%s' % inputs.x }}", False),  # a format
        ("{{ inputs.x | join('-' * 2) }}", False),  # a repetition inside a filter's argument
        ("{{ inputs.x | center(80) }}", False),  # a padding filter
        ("{{ inputs.x | map('upper') | list }}", False),  # map by filter name
        ("{{ inputs.x | tojson(indent=100) }}", False),  # tojson that pads
        ("{{ inputs.x | striptags }}", False),  # a regular expression that can backtrack
        ("{{ inputs.x is defined and inputs.y is in inputs.z }}", True),
        ("{{ inputs.x is divisibleby 3 }}", False),  # value % 3 formats a string
        ("{{ inputs.x | select('odd') | list }}", False),  # the same, through select
        ("{{ inputs.x | round(2) }}", True),
        ("{{ inputs.x | round(inputs.p) }}", False),  # 10 ** precision
        ("{{ inputs.x | trim(inputs.chars) }}", False),  # strip by as many characters
        ("{{ inputs.x | default(inputs.y) }}", True),
        ("{{ inputs.x | tojson | tojson | tojson }}", True),
        ("{{ inputs.x | tojson | tojson | tojson | tojson }}", False),  # each may double it
    ],
)
def test_only_plain_templates_render_in_the_engine(template: str, plain: bool) -> None:
    """Reading values, choosing between them and passing them through filters whose cost grows
    with their input is plain; statements, literals, calls, repetition, formats, padding and
    filters that scan with backtracking expressions are not."""
    assert is_plain(template) is plain
