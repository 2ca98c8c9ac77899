"""Who may use which kind, when a third-party kind is broken: a plugin whose module cannot be
imported is a clear error for the workflows that use it, and costs no one else anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.core.errors import ValidationFailed
from awe.engine import permissions
from awe.engine.registry import ENTRY_POINT_GROUP, Registry
from tests.conftest import make_settings


@pytest.fixture
def with_broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """An installed distribution (a real dist-info on sys.path) whose step kind points at a
    module that does not exist; a fresh registry sees it."""
    info = tmp_path / "site" / "awe_broken_kind-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: awe-broken-kind\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbroken = awe_no_such_module:kind\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = Registry()
    assert registry.knows("broken")
    return registry


def test_a_kind_that_cannot_load_is_refused_by_name_and_blocks_nothing_else(
    with_broken_plugin: Registry, tmp_path: Path
) -> None:
    """Members keep every unprivileged kind (the broken one is not among them); a member's
    workflow of built-in kinds passes; one that uses the broken kind is refused with the kind,
    where it points and why it failed."""
    settings = make_settings(tmp_path)
    allowed = permissions.member_capabilities(settings, with_broken_plugin)
    assert {"noop", "http", "llm"} <= allowed
    assert "broken" not in allowed
    fine = {"name": "fine", "steps": [{"id": "a", "kind": "noop"}]}
    permissions.check_member_spec(fine, settings=settings, registry=with_broken_plugin)
    uses = {"name": "uses", "steps": [{"id": "a", "kind": "broken"}]}
    with pytest.raises(ValidationFailed) as refused:
        permissions.check_member_spec(uses, settings=settings, registry=with_broken_plugin)
    assert "'broken' could not be loaded (awe_no_such_module:kind)" in str(refused.value)
    assert "ModuleNotFoundError" in str(refused.value)
