"""What the worker does for a claimed step before running it: may it run, and its secrets.

A step of an untrusted run (a member's) that uses a kind members may not use fails with
``permission`` here, whatever was checked at push and start: the setting that applies is the
one in force now. Secrets referenced in the step's input are opened from the project's store
and put in place; the step's masker then hides their values in everything it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.errors import AweError
from awe.engine import permissions, secret_refs
from awe.engine.errors import Failure, StepError, classify
from awe.engine.registry import Registry
from awe.engine.secret_refs import Masker
from awe.storage import secret_store
from awe.storage.database import Database
from awe.storage.models import Project
from awe.storage.queue import ClaimedStep


@dataclass(frozen=True)
class Prepared:
    """The parameters to run a step with, or why it may not run."""

    params: Any = None
    failure: Failure | None = None
    masker: Masker = field(default_factory=lambda: Masker([]))


class Preparation:
    """Prepares claimed steps for one worker."""

    def __init__(self, db: Database, settings: Settings, registry: Registry) -> None:
        self.db = db
        self.settings = settings
        self.registry = registry
        self._member: frozenset[str] | None = None

    def __call__(self, step: ClaimedStep) -> Prepared:
        """The step's parameters with its secrets, or the failure that stops it."""
        refusal = self._refusal(step)
        if refusal is not None:
            return Prepared(failure=Failure("permission", refusal, False))
        names = secret_refs.referenced(step.input)
        if not names:
            return Prepared(params=step.input)
        try:
            return self._with_secrets(step, names)
        except StepError as exc:
            return Prepared(failure=classify(exc))
        except AweError as exc:  # the instance key does not open them (another key)
            return Prepared(failure=Failure("secrets", exc.message, True))

    def _refusal(self, step: ClaimedStep) -> str | None:
        if step.trusted or not self.registry.knows(step.kind):
            return None  # an unknown kind fails when it is run, with its own message
        if self._member is None:
            self._member = permissions.member_capabilities(self.settings, self.registry)
        items = (
            step.input
            if "for_each" in step.definition and isinstance(step.input, list)
            else [step.input]
        )
        for params in items:
            needed = permissions.capability(self.registry, step.kind, params)
            if needed not in self._member:
                return permissions.refusal(step.step_key, needed)
        return None

    def _with_secrets(self, step: ClaimedStep, names: set[str]) -> Prepared:
        key = instance_key(self.settings)
        project_key = step.project_id or ""
        with self.db.read() as conn:
            values = secret_store.values(conn, key, project_key=project_key, wanted=names)
            project = (
                conn.execute(select(Project.name).where(Project.id == project_key)).scalar()
                if project_key
                else None
            )
        masker = Masker(list(values.values()))
        params = secret_refs.resolve(
            step.input,
            values=values,
            step_id=step.id,
            nonce=step.ref_nonce,
            tagger=key.tag,
            project=project,
        )
        return Prepared(params=params, masker=masker)
