"""Privacy, for admins: where a person appears (right of access) and their erasure, with its
receipt. The subject travels in the request body, never in a URL (URLs end up in logs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from awe.api.deps import AdminPrincipal, DbDep, MetaDep, SettingsDep, actor_of
from awe.api.schemas import ErasureIn, SubjectIn
from awe.services import erasure, subject_search

router = APIRouter()


@router.post("/admin/subject-search", tags=["admin"])
def search_subject(
    body: SubjectIn, principal: AdminPrincipal, db: DbDep, settings: SettingsDep, meta: MetaDep
) -> dict[str, Any]:
    """Every table and column holding the person, sealed columns opened (admins); the audit
    entry names a keyed hash of them."""
    found, tag = subject_search.locate(
        db, settings, email=body.email, user=body.user, value=body.value,
        actor=actor_of(principal, meta),
    )  # fmt: skip
    return {"subject": tag, "rows": found.total, "tables": found.as_dict()}


@router.post("/admin/erasures", tags=["admin"])
def erase_subject(
    body: ErasureIn, principal: AdminPrincipal, db: DbDep, settings: SettingsDep, meta: MetaDep
) -> dict[str, Any]:
    """Erase the person (admins): delete or pseudonymize every row holding them, verify, and
    return the receipt (``verified`` false says what could not be proved, in ``problems``).
    409 when a run holding them is still open (nothing changed)."""
    receipt = erasure.erase(
        db, settings, email=body.email, user=body.user, value=body.value, mode=body.mode,
        dry_run=body.dry_run, expect=body.expect, actor=actor_of(principal, meta),
    )  # fmt: skip
    return receipt.as_dict()
