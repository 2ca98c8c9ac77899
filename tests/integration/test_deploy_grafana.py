"""The shipped Grafana files: the datasource and dashboard provisioning agree with each other and
with the dashboard, the dashboard has its rows and variables, and every PromQL query of it
parses and names only series that awe exposes or that a recording rule makes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from awe.api.app import create_app
from awe.core.config import Settings
from awe.storage.database import Database

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "awe.json").read_text(encoding="utf-8"))
ROWS = ("Health", "Queues", "Steps", "Workflows", "API", "AI", "Operations")
#: Series Prometheus makes itself.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, variable and annotation of the dashboard."""
    found = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in DASHBOARD["templating"]["list"]:
        inner = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
        assert inner, variable["name"]
        found.append((f"variable {variable['name']}", inner[1]))
    found += [(f"annotation {a['name']}", a["expr"]) for a in DASHBOARD["annotations"]["list"]]
    return found


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by what they stand for at their widest."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(queue|workflow)\}?", ".*", expr)


def selected_names(expr: str) -> set[str]:
    """The metric names an expression selects (parsed, not pattern-matched)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit, None)
    return names


def exposed_names(text: str) -> set[str]:
    """Every series name a Prometheus text exposition can produce, samples or not."""
    names: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
    }
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def recorded_names() -> set[str]:
    """The names the shipped recording rules record."""
    rules = YAML(typ="safe").load(DEPLOY / "prometheus" / "awe-rules.yml")
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_provisioning_points_at_the_dashboard_and_its_datasource() -> None:
    """The provisioned datasource is the uid every panel uses; the dashboard provider reads the
    folder compose mounts the dashboards in."""
    sources = YAML(typ="safe").load(GRAFANA / "provisioning" / "datasources" / "awe.yaml")
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", "awe-prometheus")
    uids = {
        target["datasource"]["uid"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    }
    assert uids == {"awe-prometheus"}
    providers = YAML(typ="safe").load(GRAFANA / "provisioning" / "dashboards" / "awe.yaml")
    path = providers["providers"][0]["options"]["path"]
    compose = YAML(typ="safe").load(DEPLOY / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts


def test_the_dashboard_has_its_rows_and_variables() -> None:
    """Health, queues, steps, workflows, API, AI and operations rows, in that order, each with
    panels under it; a queue and a workflow variable; panel ids unique."""
    panels = DASHBOARD["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert tuple(rows) == ROWS
    kinds = [p["type"] for p in panels]
    for index, kind in enumerate(kinds):
        if kind == "row":
            assert index + 1 < len(kinds), panels[index]["title"]
            assert kinds[index + 1] != "row", panels[index]["title"]
    assert {v["name"] for v in DASHBOARD["templating"]["list"]} == {"queue", "workflow"}
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[w for w, _ in queries()])
def test_every_query_parses(where: str, expr: str) -> None:
    """Each query is valid PromQL once Grafana's variables are substituted."""
    assert selected_names(as_promql(expr)), where


def test_every_query_names_series_awe_exposes(database: Database, settings: Settings) -> None:
    """Every metric a query selects is in an API process's /metrics (which carries this
    process's worker, scheduler, LLM and embedding series too), a recording rule, or
    Prometheus's own series: a renamed metric breaks this test, not the dashboard."""
    with TestClient(create_app(settings, db=database)) as client:
        known = exposed_names(client.get("/metrics").text)
    known |= recorded_names() | PROMETHEUS_OWN
    missing = {
        (where, name)
        for where, expr in queries()
        for name in selected_names(as_promql(expr))
        if name not in known
    }
    assert missing == set()
