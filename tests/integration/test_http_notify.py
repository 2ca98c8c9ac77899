"""The ``http`` and ``notify`` kinds against a real local HTTP server and a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from awe.core.config import Settings
from awe.engine.client import Engine
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.servers import HttpServer, Mailbox, Reply, free_port, http_server, smtp_server

FAST_RETRY = {"max_attempts": 3, "backoff": [0], "jitter": 0}
#: The test servers listen on loopback, which steps may only reach when it is allowed.
LOCAL = {"http_allowed_hosts": "127.0.0.1"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that let steps reach the local test servers (and nothing else private)."""
    return make_settings(tmp_path, **LOCAL)


@pytest.fixture
def web() -> Iterator[HttpServer]:
    """A real HTTP server on loopback."""
    with http_server() as server:
        yield server


def one_step(kind: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A one-step workflow."""
    return {"name": "net", "steps": [{"id": "call", "kind": kind, "with": params, **extra}]}


def test_get_parses_json_and_fan_out_keeps_order(
    engine: Engine, drain: Drain, web: HttpServer
) -> None:
    """A GET's JSON body is in the output; a for_each fan-out gathers answers in item order."""
    spec = one_step("http", {"url": web.url + "/items/{{ item }}"}, for_each=["a", "b", "c"])
    run_id = engine.submit(spec)
    drain()
    step = engine.get_run(run_id).step("call")
    assert step.status == "succeeded"
    assert [r["json"] for r in step.output] == [{"path": f"/items/{x}"} for x in "abc"]
    assert {r["status"] for r in step.output} == {200}
    assert [s.method for s in web.seen("/items/a")] == ["GET"]


def test_post_sends_json_with_the_idempotency_key(
    engine: Engine, drain: Drain, web: HttpServer
) -> None:
    """A POST carries its JSON body and Idempotency-Key = run_id/step_key, the same on retry."""
    web.script("/hook", Reply(status=503, body={"error": "busy"}), Reply(status=201))
    run_id = engine.submit(
        one_step(
            "http",
            {"method": "post", "url": web.url + "/hook", "json": {"n": 1}},
            retry=FAST_RETRY,
        )
    )
    drain()
    step = engine.get_run(run_id).step("call")
    assert (step.status, step.attempt, step.output["status"]) == ("succeeded", 2, 201)
    assert step.errors[0]["category"] == "http:503"
    seen = web.seen("/hook")
    assert [s.json() for s in seen] == [{"n": 1}, {"n": 1}]
    assert {s.headers["Idempotency-Key"] for s in seen} == {f"{run_id}/call"}


@pytest.mark.parametrize(
    ("status", "attempts", "category"),
    [(404, 1, "http:404"), (422, 1, "http:422"), (429, 3, "http:429"), (500, 3, "http:500")],
)
def test_status_codes_decide_retries(
    engine: Engine, drain: Drain, web: HttpServer, status: int, attempts: int, category: str
) -> None:
    """429 and 5xx are retried until attempts run out; other 4xx go to the DLQ at once."""
    web.script("/x", Reply(status=status, body={"why": "no"}))
    run_id = engine.submit(one_step("http", {"url": web.url + "/x"}, retry=FAST_RETRY))
    drain()
    step = engine.get_run(run_id).step("call")
    assert (step.status, step.attempt, step.error_category) == ("dead", attempts, category)
    assert f"answered {status}" in (step.error_message or "")
    assert len(web.seen("/x")) == attempts


def test_unreachable_and_slow_servers_are_retryable(
    engine: Engine, drain: Drain, web: HttpServer
) -> None:
    """A refused connection is 'connection' and a slow answer 'timeout'; both are retried."""
    web.script("/slow", Reply(delay=2))
    refused = engine.submit(
        one_step("http", {"url": f"http://127.0.0.1:{free_port()}/"}, retry=FAST_RETRY)
    )
    slow = engine.submit(
        one_step(
            "http",
            {"url": web.url + "/slow", "timeout": 0.2},
            retry={**FAST_RETRY, "max_attempts": 2},
        )
    )
    drain()
    for run_id, category, attempts in ((refused, "connection", 3), (slow, "timeout", 2)):
        step = engine.get_run(run_id).step("call")
        assert (step.status, step.error_category, step.attempt) == ("dead", category, attempts)


def test_bad_parameters_are_validation_errors(engine: Engine, drain: Drain) -> None:
    """A missing URL or an unknown method fails once, naming each problem."""
    run_id = engine.submit(one_step("http", {"method": "FETCH", "url": "ftp://x"}))
    drain()
    step = engine.get_run(run_id).step("call")
    assert (step.status, step.error_category, step.attempt) == ("dead", "validation", 1)
    assert "with.url must be an http:// or https:// URL" in (step.error_message or "")
    assert "with.method 'FETCH' is not one of" in (step.error_message or "")


def test_dry_run_sends_no_changing_request(
    engine: Engine, drain: Drain, web: HttpServer, tmp_path: Path
) -> None:
    """In a dry run a POST and a webhook are not sent; a GET still is."""
    spec = {
        "name": "dry",
        "steps": [
            {"id": "read", "kind": "http", "with": {"url": web.url + "/r"}},
            {"id": "write", "kind": "http", "with": {"method": "DELETE", "url": web.url + "/w"}},
            {"id": "tell", "kind": "notify", "with": {"webhook": web.url + "/n", "message": "m"}},
        ],
    }
    run_id = engine.submit(spec)
    drain(dry_run=True)
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("write").output["dry_run"] is True
    assert run.step("tell").output["dry_run"] is True
    assert [r.path for r in web.requests] == ["/r"]


def test_webhook_notification(engine: Engine, drain: Drain, web: HttpServer) -> None:
    """notify posts {text, run_id, step, idempotency_key} to its webhook."""
    run_id = engine.submit(one_step("notify", {"webhook": web.url + "/chat", "message": "done"}))
    drain()
    assert engine.get_run(run_id).step("call").output["status"] == 200
    (seen,) = web.seen("/chat")
    assert seen.json() == {
        "text": "done",
        "run_id": run_id,
        "step": "call",
        "idempotency_key": f"{run_id}/call",
    }


def test_default_webhook_from_settings(
    engine: Engine, drain: Drain, web: HttpServer, tmp_path: Path
) -> None:
    """Without to or webhook, notify uses AWE_NOTIFY_WEBHOOK_URL; without that, it says so."""
    missing = engine.submit(one_step("notify", {"message": "hi"}))
    drain()
    step = engine.get_run(missing).step("call")
    assert step.error_category == "validation"
    assert "AWE_NOTIFY_WEBHOOK_URL" in (step.error_message or "")
    run_id = engine.submit(one_step("notify", {"message": "hi", "payload": {"custom": True}}))
    drain(settings=make_settings(tmp_path, notify_webhook_url=web.url + "/default", **LOCAL))
    assert engine.get_run(run_id).status == "succeeded"
    assert web.seen("/default")[0].json() == {"custom": True}


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[tuple[Mailbox, Settings]]:
    """A real SMTP server and settings that point at it."""
    with smtp_server() as (mailbox, port):
        yield (
            mailbox,
            make_settings(
                tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_from="ops@example.org"
            ),
        )


def test_email_notification(engine: Engine, drain: Drain, mail: tuple[Mailbox, Settings]) -> None:
    """notify with 'to' sends one email through SMTP, with subject, sender and idempotency key."""
    mailbox, settings = mail
    run_id = engine.submit(
        one_step(
            "notify",
            {"to": ["a@example.org", "b@example.org"], "subject": "Backup", "message": "all good"},
        )
    )
    drain(settings=settings)
    output = engine.get_run(run_id).step("call").output
    assert output["to"] == ["a@example.org", "b@example.org"]
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == ["a@example.org", "b@example.org"]
    assert envelope.mail_from == "ops@example.org"
    assert isinstance(envelope.content, bytes)
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "Backup"
    assert message["X-Awe-Idempotency-Key"] == f"{run_id}/call"
    assert message.get_payload().strip() == "all good"


def test_refused_recipient_is_not_retried_but_try_later_is(
    engine: Engine, drain: Drain, mail: tuple[Mailbox, Settings]
) -> None:
    """An SMTP 5xx refusal goes to the DLQ at once; a 4xx 'try later' is retried."""
    mailbox, settings = mail
    mailbox.refuse = {"gone@example.org": "550 5.1.1 no such user", "busy@example.org": "451 later"}
    gone = engine.submit(one_step("notify", {"to": "gone@example.org", "message": "m"}))
    busy = engine.submit(
        one_step("notify", {"to": "busy@example.org", "message": "m"}, retry=FAST_RETRY)
    )
    drain(settings=settings)
    gone_step = engine.get_run(gone).step("call")
    busy_step = engine.get_run(busy).step("call")
    assert (gone_step.status, gone_step.attempt, gone_step.error_category) == (
        "dead",
        1,
        "smtp:refused",
    )
    assert (busy_step.status, busy_step.attempt) == ("dead", 3)
    assert mailbox.messages == []


def test_unreachable_smtp_server_is_a_connection_error(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """No SMTP server listening: the step fails as 'connection' (retryable), naming the server."""
    port = free_port()
    run_id = engine.submit(
        one_step("notify", {"to": "a@example.org", "message": "m"}, retry={"max_attempts": 1})
    )
    drain(settings=make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port, **LOCAL))
    step = engine.get_run(run_id).step("call")
    assert step.error_category == "connection"
    assert f"SMTP 127.0.0.1:{port}" in (step.error_message or "")
