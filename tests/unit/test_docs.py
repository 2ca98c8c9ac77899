"""The README stays honest: its settings table and command list match the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from typer._click import core as click

from awe.cli.main import app
from awe.core.config import Settings, setting_env_names

README = Path(__file__).resolve().parents[2] / "README.md"
# Defaults that are computed or depend on the environment, shown in words.
SPECIAL_DEFAULTS = {
    "home": "`.awe`",
    "database_url": "SQLite at `$AWE_HOME/awe.db`",
    "log_format": "auto",
}


def expected_settings_rows() -> list[str]:
    """The settings table rows as core/config.py defines them."""
    names = setting_env_names()
    rows = []
    for field_name, field in Settings.model_fields.items():
        env = names[field_name]
        default = SPECIAL_DEFAULTS.get(field_name, f"`{field.default}`")
        older = ", ".join(f"`{name}`" for name in env[1:])
        rows.append(f"| `{env[0]}` | {older} | {default} | {field.description} |")
    return rows


def test_settings_table_matches_config() -> None:
    """The README's configuration table lists exactly the settings, names and defaults in code."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    rows = [line for line in block.strip().splitlines()[2:] if line.startswith("|")]
    expected = expected_settings_rows()
    assert rows == expected, "README settings table is stale; it should read:\n" + "\n".join(
        expected
    )


def _command_paths(group: Any, prefix: str = "awe") -> list[str]:
    # Typer vendors its own click, so groups are recognised by having sub-commands. Asked
    # through list_commands/get_command: the root loads its commands only when asked.
    paths = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        path = f"{prefix} {name}"
        if hasattr(command, "list_commands"):
            paths.extend(_command_paths(command, path))
        else:
            paths.append(path)
    return paths


def test_every_command_is_in_readme() -> None:
    """Each `awe …` command the CLI has appears in the README's command table."""
    text = README.read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    assert hasattr(root, "list_commands")
    missing = [path for path in _command_paths(root) if f"`{path}" not in text]
    assert missing == []


def test_readme_first_screen_names_both_commands() -> None:
    """The first 30 lines give `make up`, `make test`, the URL and where the data lives."""
    head = "\n".join(README.read_text(encoding="utf-8").splitlines()[:30])
    for needle in ("make up", "make test", "http://127.0.0.1:8000", "./.awe/"):
        assert needle in head


WORKFLOWS_DOC = README.parent / "docs" / "workflows.md"


def documented_kind_keys() -> dict[str, set[str] | None]:
    """Each kind's `with:` keys as docs/workflows.md lists them (None for "*any*")."""
    text = WORKFLOWS_DOC.read_text(encoding="utf-8")
    part = text.split("## Step kinds", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str] | None] = {}
    for section in re.split(r"^### `", part, flags=re.M)[1:]:
        name, _, body = section.partition("`")
        table = [line for line in body.splitlines() if line.startswith("| ")][1:]
        cells = [line.split("|")[1].strip() for line in table]
        found[name] = (
            None if cells == ["*any*"] else set(re.findall(r"^`([^`]+)`$", "\n".join(cells), re.M))
        )
    return found


def test_every_kinds_keys_are_documented_exactly() -> None:
    """docs/workflows.md has a section for each step kind, listing exactly the `with:` keys the
    kind declares (no key missing, none the kind does not take)."""
    from awe.engine.registry import default_registry

    declared = {name: default_registry.info(name).keys for name in default_registry.names()}
    documented = documented_kind_keys()
    assert set(documented) == set(declared)
    for name, keys in declared.items():
        assert documented[name] == (None if keys is None else set(keys)), name


def test_docs_reach_users() -> None:
    """The README points at the docs users have (docs/), never at a folder outside the project."""
    text = README.read_text(encoding="utf-8")
    assert "../shared" not in text
    for page in ("docs/workflows.md", "docs/security.md", "docs/deploy.md"):
        assert page in text
        assert (README.parent / page).is_file()


def slugs(page: Path) -> set[str]:
    """The anchors a Markdown page's headings get (GitHub's rule: lower case, punctuation
    dropped, spaces as hyphens)."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def test_links_between_docs_and_alert_runbooks_land_on_a_heading() -> None:
    """Every ``page.md#anchor`` link in docs/ and every alert's runbook_url names a heading that
    exists on that page."""
    docs = README.parent / "docs"
    links: list[tuple[str, str, str]] = []
    for page in docs.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([\w-]*\.md)?#([\w-]+)\)", text):
            links.append((page.name, target or page.name, anchor))
    alerts = (README.parent / "deploy" / "prometheus" / "awe-alerts.yml").read_text()
    for target, anchor in re.findall(r"docs/([\w-]+\.md)#([\w-]+)", alerts):
        links.append(("awe-alerts.yml", target, anchor))
    assert links
    broken = [(source, t, a) for source, t, a in links if a not in slugs(docs / t)]
    assert broken == []


def test_commands_the_docs_name_exist() -> None:
    """Each ``awe …`` command docs/deploy.md and docs/operations.md tell people to run is one
    the CLI has."""
    root = typer.main.get_command(app)
    assert hasattr(root, "list_commands")
    paths = set(_command_paths(root))
    groups = {p.rsplit(" ", 1)[0] for p in paths}
    missing = []
    for name in ("deploy.md", "operations.md"):
        text = (README.parent / "docs" / name).read_text(encoding="utf-8")
        for words in re.findall(r"`(awe(?: [a-z][a-z-]*)+)", text):
            parts = words.split()
            # The longest known prefix: a command (what follows are its arguments), or a
            # group named on its own (``awe dlq``); a group followed by a word not its own
            # sub-command is a command that does not exist.
            known = next(
                (n for n in range(len(parts), 1, -1) if " ".join(parts[:n]) in paths | groups),
                None,
            )
            if known is None or (" ".join(parts[:known]) not in paths and known < len(parts)):
                missing.append((name, words))
    assert missing == []
