"""``kind: workflow``: a step that runs a stored workflow as a child run and waits for it.

The step holds no lease and no worker slot while it waits (its state is ``waiting``): the child
is an ordinary run, and when it finishes, its last transaction settles the parent's step and
moves the parent run on. What this module holds is the reading side: finding stored versions,
a step's child, checking a step's parameters, and finding workflows that call each other before
anything runs. The state changes live in ``child_runs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from awe.core.errors import PermissionDenied, ValidationFailed
from awe.engine.errors import StepError
from awe.engine.inputs import resolve_inputs
from awe.engine.spec import CHILD_KIND
from awe.engine.templating import has_template
from awe.storage.engine_models import Run, Workflow
from awe.storage.privacy import readable

#: The category of a workflow step whose child run failed or was cancelled.
CHILD_FAILED = "child_run"


@dataclass(frozen=True)
class StoredSpec:
    """One stored version of a workflow."""

    name: str
    version: int
    spec: dict[str, Any]
    #: Pushed by an admin or the operator: its runs may use privileged kinds.
    trusted: bool = True


def stored_workflow(
    conn: Connection, *, project_key: str, name: str, version: int | None = None
) -> StoredSpec | None:
    """The stored version ``version`` of ``name`` (the latest when None), or None."""
    statement = select(Workflow.name, Workflow.version, Workflow.spec, Workflow.trusted).where(
        Workflow.project_key == project_key, Workflow.name == name
    )
    if version is not None:
        statement = statement.where(Workflow.version == version)
    row = conn.execute(statement.order_by(Workflow.version.desc()).limit(1)).first()
    return None if row is None else StoredSpec(row.name, row.version, row.spec, bool(row.trusted))


def latest_child(conn: Connection, parent_step_id: str) -> Any:
    """The newest child run of a step (id, status, outputs, error), or None."""
    return conn.execute(
        select(Run.id, Run.status, Run.outputs, Run.error)
        .where(Run.parent_step_id == parent_step_id)
        .order_by(Run.id.desc())
        .limit(1)
    ).first()


def untrusted_child(step_key: str, child: StoredSpec) -> str:
    """Why a trusted run may not start ``child``: a member pushed it."""
    return (
        f"step {step_key!r}: workflow {child.name!r} version {child.version} was pushed by a"
        " member, and a workflow pushed by an admin may only call workflows pushed by admins or"
        " the operator (a member could otherwise change what the admin's workflow runs): push it"
        " as an admin, or pin a version an admin pushed"
    )


def pin_versions(
    conn: Connection, spec: dict[str, Any], *, project_key: str, trusted: bool = True
) -> dict[str, Any]:
    """``spec`` with each workflow step's literal workflow pinned to a version, checked to exist
    (and, for a ``trusted`` run, to have been pushed by an admin: PermissionDenied otherwise).

    A run then keeps the child versions it was submitted with, as it keeps its own; a name given
    by a template is resolved (to the latest version) when the step becomes ready.
    """
    steps = []
    for step in spec["steps"]:
        params = step.get("with") or {}
        name = params.get("workflow") if step["kind"] == CHILD_KIND else None
        if (
            isinstance(name, str)
            and not has_template(name)
            and not has_template(params.get("version"))
        ):
            found = stored_workflow(
                conn, project_key=project_key, name=name, version=params.get("version")
            )
            if found is None:
                which = f" version {params['version']}" if params.get("version") else ""
                raise ValidationFailed(
                    f"step {step['id']!r}: no stored workflow {name!r}{which}"
                    f" (store it first: awe workflows push FILE)"
                )
            if trusted and not found.trusted:
                raise PermissionDenied(untrusted_child(step["id"], found))
            step = {**step, "with": {**params, "version": found.version}}
        steps.append(step)
    return {**spec, "steps": steps}


def resolve(
    conn: Connection, *, step_key: str, params: Any, project_key: str
) -> tuple[StoredSpec, dict[str, Any]]:
    """The stored spec and checked inputs a workflow step's rendered parameters ask for."""
    if not isinstance(params, dict) or not isinstance(params.get("workflow"), str):
        raise _invalid(f"step {step_key}: with.workflow must give a stored workflow's name")
    version = params.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise _invalid(f"step {step_key}: with.version must be an integer, not {version!r}")
    found = stored_workflow(conn, project_key=project_key, name=params["workflow"], version=version)
    if found is None:
        which = f" version {version}" if version is not None else ""
        raise _invalid(f"step {step_key}: no stored workflow {params['workflow']!r}{which}")
    given = params.get("inputs") or {}
    if not isinstance(given, dict):
        raise _invalid(f"step {step_key}: with.inputs must be a mapping")
    try:
        inputs = resolve_inputs(found.spec, given)
    except ValidationFailed as exc:
        raise _invalid(
            f"step {step_key}: inputs of workflow {found.name!r}: {exc.message}"
        ) from None
    return found, inputs


def _invalid(message: str) -> StepError:
    # The message may quote an input's value: in privacy mode it is scrubbed (short, and only
    # when a child cannot start).
    return StepError(str(readable(message)), category="validation", retryable=False)


def _literal_calls(spec: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(step id, workflow name, version or None) of each workflow step with a literal name."""
    calls = []
    for step in spec.get("steps") or []:
        params = step.get("with") if step.get("kind") == CHILD_KIND else None
        if not isinstance(params, dict):
            continue
        name, version = params.get("workflow"), params.get("version")
        if isinstance(name, str) and not has_template(name):
            calls.append((str(step.get("id")), name, version if isinstance(version, int) else None))
    return calls


def check_calls(
    conn: Connection, spec: dict[str, Any], *, project_key: str, max_depth: int
) -> None:
    """Refuse a workflow whose workflow steps call back into it, or nest deeper than
    ``max_depth``, following the stored versions they name (ValidationFailed naming the chain).

    Names given by templates are only known at run time; the depth limit stops those there.
    """
    root = spec["name"]
    # How deep the calls below each stored version go: each version is walked once, however
    # many workflows call it (without this, a wide tree of calls would be walked per path).
    below: dict[tuple[str, int], int] = {}

    def walk(current: dict[str, Any], path: list[str]) -> int:
        deepest = 0
        for step_id, name, version in _literal_calls(current):
            chain = [*path, name]
            if name in path:
                raise ValidationFailed(
                    f"step {step_id!r}: workflows call each other: {' -> '.join(chain)}"
                    " (a workflow may not run itself, directly or through others)"
                )
            found = stored_workflow(conn, project_key=project_key, name=name, version=version)
            depth = 1
            if found is not None:
                seen = (found.name, found.version)
                if seen not in below:
                    below[seen] = walk(found.spec, chain)
                depth += below[seen]
            if len(path) - 1 + depth > max_depth:
                raise ValidationFailed(
                    f"step {step_id!r}: workflow steps nest more than {max_depth} deep"
                    f" ({' -> '.join(chain)} -> …); AWE_MAX_WORKFLOW_DEPTH sets the limit"
                )
            deepest = max(deepest, depth)
        return deepest

    walk(spec, [root])
