"""Projects and what lives in them: workflows (versions, validation), new runs, documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile, status
from fastapi import Path as PathParam

from awe.ai.vectors import SearchFilter
from awe.api.deps import CurrentPrincipal, DbDep, MetaDep, SettingsDep, actor_of
from awe.api.schemas import (
    ChunkPublic,
    DocumentPublic,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    RunBatchCreate,
    RunCreate,
    RunsStarted,
    RunStarted,
    SearchIn,
    SecretPublic,
    SecretSet,
    UploadResult,
    ValidationResult,
    WorkflowDetail,
    WorkflowPush,
    WorkflowVersionPublic,
)
from awe.core.errors import ValidationFailed
from awe.services import knowledge, projects, runs, secrets, workflows

router = APIRouter(tags=["projects"])
ProjectRef = Annotated[str, "a project's id or name"]


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic)
def create_project(
    body: ProjectCreate, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """A new project, owned by you (an admin may give owner_id)."""
    created = projects.create(
        db,
        principal,
        name=body.name,
        description=body.description,
        owner_id=body.owner_id,
        actor=actor_of(principal, meta),
    )
    return created.as_dict()


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(principal: CurrentPrincipal, db: DbDep) -> list[dict[str, object]]:
    """Your projects (admins: every project)."""
    return [p.as_dict() for p in projects.list_visible(db, principal)]


@router.get("/projects/{project}", response_model=ProjectPublic)
def get_project(project: ProjectRef, principal: CurrentPrincipal, db: DbDep) -> dict[str, object]:
    """One project."""
    return projects.visible(db, principal, project).as_dict()


@router.patch("/projects/{project}", response_model=ProjectPublic)
def update_project(
    project: ProjectRef, body: ProjectUpdate, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Change a project's description."""
    return projects.update_description(
        db, principal, project, description=body.description, actor=actor_of(principal, meta)
    ).as_dict()


@router.delete("/projects/{project}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(
    project: ProjectRef, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> None:
    """Delete a project with its workflows, runs, schedules and documents."""
    projects.remove(db, principal, project, actor=actor_of(principal, meta))


# --------------------------------------------------------------------------------- workflows


@router.post("/workflows/validate", response_model=ValidationResult, tags=["workflows"])
def validate_workflow(
    body: WorkflowPush,
    principal: CurrentPrincipal,
    db: DbDep,
    project: Annotated[
        str | None,
        Query(max_length=100, description="Also check the secrets it reads exist there."),
    ] = None,
) -> dict[str, object]:
    """Check a workflow without storing it: every problem, located (line and column)."""
    source = _source(body)
    known = None
    if project is not None:
        found_project = projects.visible(db, principal, project)
        known = secrets.known_names(db, project_key=found_project.id)
    found = workflows.validate_source(source, known_secrets=known)
    return {"valid": not found, "problems": [p.__dict__ for p in found]}


@router.post(
    "/projects/{project}/workflows",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkflowVersionPublic,
    tags=["workflows"],
)
def push_workflow(
    project: ProjectRef, body: WorkflowPush, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Store a workflow (YAML ``source`` or JSON ``spec``) as its next immutable version.

    A member may not push a workflow that uses a privileged kind (403); what an admin pushes
    runs with an admin's privileges, whoever starts it.
    """
    found = projects.visible(db, principal, project)
    stored, created = workflows.push_source(
        db, _source(body), project=found.name, principal=principal, actor=actor_of(principal, meta)
    )
    return {**stored.summary(), "created": created}


def _source(body: WorkflowPush) -> str:
    if (body.source is None) == (body.spec is None):
        raise ValidationFailed("give the workflow as source (YAML text) or as spec (JSON), one")
    if body.source is not None:
        return body.source
    return workflows.spec_as_yaml(body.spec or {})


@router.get(
    "/projects/{project}/workflows", response_model=list[WorkflowVersionPublic], tags=["workflows"]
)
def list_workflows(
    project: ProjectRef, principal: CurrentPrincipal, db: DbDep
) -> list[dict[str, object]]:
    """The project's workflows, each at its latest version."""
    found = projects.visible(db, principal, project)
    return [w.summary() for w in workflows.latest_versions(db, project=found.name)]


@router.get(
    "/projects/{project}/workflows/{name}/versions",
    response_model=list[WorkflowVersionPublic],
    tags=["workflows"],
)
def workflow_versions(
    project: ProjectRef, name: str, principal: CurrentPrincipal, db: DbDep
) -> list[dict[str, object]]:
    """Every version of a workflow, newest first."""
    found = projects.visible(db, principal, project)
    return [v.summary() for v in workflows.versions(db, name, project=found.name)]


@router.get(
    "/projects/{project}/workflows/{name}", response_model=WorkflowDetail, tags=["workflows"]
)
def show_workflow(
    project: ProjectRef,
    name: str,
    principal: CurrentPrincipal,
    db: DbDep,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, object]:
    """A version's source and spec (the latest unless ``version``)."""
    found = projects.visible(db, principal, project)
    stored = workflows.get(db, name, version=version, project=found.name)
    return {**stored.summary(), "source": stored.shown_source(), "spec": stored.shown_spec()}


@router.post(
    "/projects/{project}/runs",
    status_code=status.HTTP_201_CREATED,
    response_model=RunStarted,
    tags=["runs"],
)
def start_run(
    project: ProjectRef, body: RunCreate, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Start a run of a stored workflow (an idempotency key already used returns that run)."""
    found = projects.visible(db, principal, project)
    run_id = runs.start(
        db,
        found,
        workflow=body.workflow,
        version=body.version,
        inputs=body.inputs,
        idempotency_key=body.idempotency_key,
        dry_run=body.dry_run,
        actor=actor_of(principal, meta),
    )
    return {"run_id": run_id}


@router.post(
    "/projects/{project}/runs:batch",
    status_code=status.HTTP_201_CREATED,
    response_model=RunsStarted,
    tags=["runs"],
)
def start_runs(
    project: ProjectRef,
    body: RunBatchCreate,
    principal: CurrentPrincipal,
    db: DbDep,
    meta: MetaDep,
) -> dict[str, object]:
    """Start up to 1,000 runs of a stored workflow in one transaction, each with its inputs and
    idempotency key; their ids in order. A bad run refuses the batch (422 naming ``runs[i]``)."""
    found = projects.visible(db, principal, project)
    run_ids = runs.start_many(
        db,
        found,
        workflow=body.workflow,
        version=body.version,
        runs=[(r.inputs, r.idempotency_key) for r in body.runs],
        dry_run=body.dry_run,
        actor=actor_of(principal, meta),
    )
    return {"run_ids": run_ids}


# ----------------------------------------------------------------------------------- secrets


@router.get("/projects/{project}/secrets", response_model=list[SecretPublic], tags=["secrets"])
def list_secrets(
    project: ProjectRef, principal: CurrentPrincipal, db: DbDep
) -> list[dict[str, object]]:
    """The names of the project's secrets (never their values)."""
    found = projects.visible(db, principal, project)
    return [s.as_dict() for s in secrets.list_secrets(db, project=found)]


@router.put(
    "/projects/{project}/secrets/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["secrets"],
)
def set_secret(
    project: ProjectRef,
    name: Annotated[str, PathParam(max_length=100)],
    body: SecretSet,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
) -> None:
    """Set a secret of the project (its owner or an admin); steps read it as
    ``{{ secrets.NAME }}``."""
    found = projects.visible(db, principal, project)
    secrets.set_secret(
        db, settings, project=found, name=name, value=body.value, actor=actor_of(principal, meta)
    )


@router.delete(
    "/projects/{project}/secrets/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["secrets"],
)
def unset_secret(
    project: ProjectRef,
    name: Annotated[str, PathParam(max_length=100)],
    principal: CurrentPrincipal,
    db: DbDep,
    meta: MetaDep,
) -> None:
    """Delete a secret of the project."""
    found = projects.visible(db, principal, project)
    secrets.unset(db, project=found, name=name, actor=actor_of(principal, meta))


# --------------------------------------------------------------------------------- knowledge


@router.post(
    "/projects/{project}/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    tags=["knowledge"],
)
def upload_documents(
    project: ProjectRef,
    files: Annotated[list[UploadFile], File(description="Documents (txt, md, html, pdf…).")],
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
) -> dict[str, object]:
    """Upload documents: checked now, ingested by a run (see its id)."""
    found = projects.visible(db, principal, project)
    report = knowledge.add_uploads(
        db,
        settings,
        [(upload.filename or "upload", upload.file) for upload in files],
        project=found.name,
        actor=actor_of(principal, meta),
    )
    return {
        "run_id": report.run_id,
        "documents": [d.as_dict() for d in report.stored + report.unchanged],
        "refused": [{"name": Path(p).name, "error": e} for p, e in report.refused],
    }


@router.get(
    "/projects/{project}/documents", response_model=list[DocumentPublic], tags=["knowledge"]
)
def list_documents(
    project: ProjectRef, principal: CurrentPrincipal, db: DbDep
) -> list[dict[str, object]]:
    """The project's documents and their state."""
    found = projects.visible(db, principal, project)
    return [d.as_dict() for d in knowledge.list_documents(db, project=found.name)]


@router.delete(
    "/projects/{project}/documents/{document}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["knowledge"],
)
def delete_document(
    project: ProjectRef,
    document: str,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
) -> None:
    """Delete a document (by id or name) with its chunks and vectors."""
    found = projects.visible(db, principal, project)
    knowledge.remove(db, settings, [document], project=found.name, actor=actor_of(principal, meta))


@router.post("/projects/{project}/search", response_model=list[ChunkPublic], tags=["knowledge"])
def search(
    project: ProjectRef,
    body: SearchIn,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
) -> list[dict[str, object]]:
    """The chunks nearest a query."""
    found = projects.visible(db, principal, project)
    chunks = knowledge.search(
        db,
        settings,
        body.query,
        top_k=body.top_k,
        project=found.name,
        where=SearchFilter(names=body.names),
        allow_mixed=body.allow_mixed,
    )
    return [c.as_dict() for c in chunks]
