"""Outbound requests cannot be turned against the worker's own network: loopback, link-local
(cloud metadata), names that resolve to them and redirects into them are refused by http and
notify steps and by remote providers, with a clear error naming the setting; the allow-list
lets one chosen host through and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from awe.ai.llm.base import ChatRequest
from awe.ai.llm.openai_provider import OpenAIProvider
from awe.engine.client import Engine
from awe.engine.outbound import OutboundRefused
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.servers import Reply, http_server

# The database is not what these are about: SQLite only.
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def fetch(url: str, **extra: Any) -> dict[str, Any]:
    """A one-step workflow that GETs ``url`` once."""
    return {
        "name": "fetch",
        "steps": [
            {
                "id": "get",
                "kind": "http",
                "retry": {"max_attempts": 3},
                "with": {"url": url, **extra},
            }
        ],
    }


@SQLITE
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://[::1]:{port}/",
        "http://localhost:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_local_and_metadata_addresses_are_refused(engine: Engine, drain: Drain, url: str) -> None:
    """Each request is refused before anything is sent, not retried, naming the address and
    AWE_HTTP_ALLOWED_HOSTS; the server never sees it."""
    with http_server() as web:
        port = web.url.rsplit(":", 1)[1]
        run_id = engine.submit(fetch(url.format(port=port)))
        drain()
        step = engine.get_run(run_id).step("get")
        assert web.requests == []
    assert (step.status, step.error_category, step.attempt) == ("dead", "network_policy", 1)
    assert "AWE_HTTP_ALLOWED_HOSTS" in (step.error_message or "")
    assert "refused to connect" in (step.error_message or "")


@SQLITE
def test_the_allow_list_lets_one_host_through_and_not_a_redirect_elsewhere(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """With AWE_HTTP_ALLOWED_HOSTS=127.0.0.2, a server there answers; when it redirects to
    127.0.0.1 (not allowed) the redirect is refused, and the server on 127.0.0.1 sees nothing."""
    settings = make_settings(tmp_path, http_allowed_hosts="127.0.0.2")
    with http_server("127.0.0.2") as allowed, http_server("127.0.0.1") as inner:
        allowed.script("/away", Reply(status=302, headers={"Location": inner.url + "/secret"}))
        ok = engine.submit(fetch(allowed.url + "/fine"))
        redirected = engine.submit(fetch(allowed.url + "/away"))
        drain(settings=settings)
        assert inner.requests == []
        assert sorted(r.path for r in allowed.requests) == ["/away", "/fine"]  # any order
    assert engine.get_run(ok).status == "succeeded"
    step = engine.get_run(redirected).step("get")
    assert (step.status, step.error_category) == ("dead", "network_policy")
    assert "127.0.0.1" in (step.error_message or "")


@SQLITE
def test_allow_private_opens_everything(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """AWE_HTTP_ALLOW_PRIVATE=true lifts the rule (a machine where every user is trusted)."""
    with http_server() as web:
        run_id = engine.submit(fetch(web.url + "/x"))
        drain(settings=make_settings(tmp_path, http_allow_private=True))
        assert [r.path for r in web.requests] == ["/x"]
    assert engine.get_run(run_id).status == "succeeded"


@SQLITE
def test_webhooks_are_guarded_too(engine: Engine, drain: Drain) -> None:
    """A notify webhook to loopback is refused like an http step."""
    with http_server() as web:
        run_id = engine.submit(
            {
                "name": "hook",
                "steps": [
                    {"id": "tell", "kind": "notify", "with": {"webhook": web.url, "message": "hi"}}
                ],
            }
        )
        drain()
        assert web.requests == []
    step = engine.get_run(run_id).step("tell")
    assert (step.status, step.error_category) == ("dead", "network_policy")


def test_a_provider_reaches_its_configured_url_but_not_a_redirect_into_the_network(
    tmp_path: Path,
) -> None:
    """The openai provider (its real SDK) talks to the base URL the operator configured, even on
    loopback; a redirect from there to another local address is refused as network_policy."""
    with http_server() as provider, http_server("127.0.0.2") as elsewhere:
        provider.script(
            "/v1/chat/completions",
            Reply(status=307, headers={"Location": elsewhere.url + "/steal"}),
        )
        settings = make_settings(tmp_path, openai_base_url=provider.url + "/v1")
        client = OpenAIProvider(settings)
        request = ChatRequest(
            model="m", messages=[{"role": "user", "content": "hi"}], temperature=0, max_tokens=5
        )
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.2"):
            client.chat(request)
        assert [r.path for r in provider.requests] == ["/v1/chat/completions"]
        assert elsewhere.requests == []
