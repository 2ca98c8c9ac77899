"""Workflows (versions, source, diff, a run form from the declared inputs, validate and push)
and the knowledge base (upload, documents, search, reindex), per project."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from awe.api.deps import DbDep, MetaDep, SettingsDep, actor_of
from awe.core.errors import AweError, ValidationFailed
from awe.services import knowledge, projects, secrets, workflows
from awe.services import runs as run_service
from awe.services.projects import ProjectInfo
from awe.web import render
from awe.web.session import Checked, Viewer, WebSession
from awe.web.source import highlight_yaml, located

router = APIRouter(include_in_schema=False)
ProjectQuery = Annotated[str | None, Query(max_length=100)]
ProjectForm = Annotated[str, Form(max_length=100)]
#: The most documents uploaded in one form.
MAX_UPLOADS = 50


def needed_project(db: DbDep, viewer: WebSession, name: str | None) -> ProjectInfo:
    """``chosen_project``, for a page that cannot do without one."""
    scope = chosen_project(db, viewer, name)
    if scope is None:
        raise ValidationFailed("you have no project yet: create one on the workflows page")
    return scope


def chosen_project(db: DbDep, viewer: WebSession, name: str | None) -> ProjectInfo | None:
    """The project a page is about: the one named (visible, or NotFound), else the first."""
    if name:
        return projects.visible(db, viewer.principal, name)
    found = projects.list_visible(db, viewer.principal)
    return found[0] if found else None


def _inputs(version: workflows.WorkflowVersion) -> list[dict[str, Any]]:
    """The declared inputs of a version, as form fields."""
    declared = version.shown_spec().get("inputs") or {}
    return [
        {
            "name": name,
            "type": str(spec.get("type", "string")),
            "required": bool(spec.get("required")) and "default" not in spec,
            "default": spec.get("default"),
            "description": str(spec.get("description", "")),
        }
        for name, spec in declared.items()
        if isinstance(spec, dict)
    ]


@router.get("/workflows", response_class=HTMLResponse)
def workflows_page(
    request: Request, viewer: Viewer, db: DbDep, project: ProjectQuery = None
) -> HTMLResponse:
    """The project's workflows at their latest versions; validate or push one; new project."""
    scope = chosen_project(db, viewer, project)
    return render.page(
        request,
        "workflows.html",
        project=scope,
        projects=projects.list_visible(db, viewer.principal),
        workflows=workflows.latest_versions(db, project=scope.name) if scope else [],
    )


@router.post("/projects")
def new_project(
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    name: Annotated[str, Form(max_length=100)],
    description: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Create a project owned by the viewer; on to its workflows."""
    made = projects.create(
        db,
        viewer.principal,
        name=name.strip(),
        description=description,
        owner_id=viewer.user.id,
        actor=actor_of(viewer.principal, meta),
    )
    return RedirectResponse(f"/workflows?project={made.name}", status_code=303)


@router.get("/workflows/{name}", response_class=HTMLResponse)
def workflow_page(
    request: Request,
    name: str,
    viewer: Viewer,
    db: DbDep,
    project: ProjectQuery = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A workflow: its versions, a version's source, the run form."""
    return _workflow(request, db, viewer, project, name, version)


def _workflow(
    request: Request,
    db: DbDep,
    viewer: WebSession,
    project: str | None,
    name: str,
    version: int | None,
    *,
    status: int = 200,
    error: str | None = None,
    given: dict[str, str] | None = None,
) -> HTMLResponse:
    scope = needed_project(db, viewer, project)
    stored = workflows.get(db, name, version=version, project=scope.name)
    return render.page(
        request,
        "workflow.html",
        status=status,
        project=scope,
        stored=stored,
        versions=workflows.versions(db, name, project=scope.name),
        source=highlight_yaml(stored.shown_source()),
        inputs=_inputs(stored),
        given=given or {},
        flash={"level": "error", "message": error} if error else None,
    )


@router.get("/workflows/{name}/diff", response_class=HTMLResponse)
def workflow_diff(
    request: Request,
    name: str,
    viewer: Viewer,
    db: DbDep,
    old: Annotated[int, Query(ge=1)],
    new: Annotated[int, Query(ge=1)],
    project: ProjectQuery = None,
) -> HTMLResponse:
    """A unified diff of two versions."""
    scope = needed_project(db, viewer, project)
    text = workflows.diff(db, name, old, new, project=scope.name)
    return render.page(
        request, "diff.html", project=scope, name=name, old=old, new=new, lines=text.splitlines()
    )


async def _form(request: Request) -> FormData:
    return await request.form()


@router.post("/workflows/{name}/run", response_model=None)
def run_workflow(
    request: Request,
    name: str,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    form: Annotated[FormData, Depends(_form)],
) -> Response:
    """Start a run from the form (inputs as text, converted to their declared types)."""
    project = str(form.get("project", ""))[:100]
    version_text = str(form.get("version", ""))
    version = int(version_text) if version_text.isdigit() else None
    given = {
        str(k)[3:]: str(v) for k, v in form.multi_items() if str(k).startswith("in.") and str(v)
    }
    scope = needed_project(db, viewer, project)
    try:
        run_id = run_service.start(
            db,
            scope,
            workflow=name,
            version=version,
            inputs=given,
            idempotency_key=None,
            dry_run=form.get("dry_run") == "on",
            actor=actor_of(viewer.principal, meta),
        )
    except AweError as exc:
        return _workflow(
            request,
            db,
            viewer,
            scope.name,
            name,
            version,
            status=exc.http_status,
            error=exc.message,
            given=given,
        )
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/workflows-check", response_class=HTMLResponse)
def check_workflow(
    request: Request,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    project: ProjectForm,
    source: Annotated[str, Form(max_length=1_000_000)],
    action: Annotated[str, Form(max_length=10)] = "validate",
) -> Response:
    """Validate YAML (every problem beside its line), or push it as the next version."""
    scope = projects.visible(db, viewer.principal, project)
    known = secrets.known_names(db, project_key=scope.id)
    problems = workflows.validate_source(source, known_secrets=known)
    if problems or action != "push":
        return render.page(
            request,
            "workflow_check.html",
            status=422 if problems else 200,
            project=scope,
            source=source,
            lines=located(source, problems),
            problems=problems,
        )
    stored, created = workflows.push_source(
        db,
        source,
        project=scope.name,
        principal=viewer.principal,
        actor=actor_of(viewer.principal, meta),
    )
    target = f"/workflows/{stored.name}?project={scope.name}&version={stored.version}"
    return RedirectResponse(target + ("" if created else "&unchanged=1"), status_code=303)


@router.get("/knowledge", response_class=HTMLResponse)
def knowledge_page(
    request: Request,
    viewer: Viewer,
    db: DbDep,
    settings: SettingsDep,
    project: ProjectQuery = None,
    q: Annotated[str | None, Query(max_length=2000)] = None,
    top_k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> HTMLResponse:
    """Documents with their state; search them."""
    scope = chosen_project(db, viewer, project)
    results = None
    if scope is not None and q:
        results = knowledge.search(db, settings, q, top_k=top_k, project=scope.name)
    return render.page(
        request,
        "knowledge.html",
        project=scope,
        projects=projects.list_visible(db, viewer.principal),
        documents=knowledge.list_documents(db, project=scope.name) if scope else [],
        q=q or "",
        top_k=top_k,
        results=results,
    )


@router.post("/knowledge/upload", response_class=HTMLResponse)
def upload(
    request: Request,
    viewer: Checked,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
    project: ProjectForm,
    files: list[UploadFile],
) -> HTMLResponse:
    """Store uploaded documents and start their ingest; refused files are listed with why."""
    if len(files) > MAX_UPLOADS:
        raise ValidationFailed(f"at most {MAX_UPLOADS} files at once")
    scope = projects.visible(db, viewer.principal, project)
    report = knowledge.add_uploads(
        db,
        settings,
        [(f.filename or "upload", f.file) for f in files if f.filename],
        project=scope.name,
        actor=actor_of(viewer.principal, meta),
    )
    return render.page(
        request,
        "knowledge_added.html",
        status=200 if report.stored or report.unchanged or not report.refused else 422,
        project=scope,
        report=report,
    )


@router.post("/knowledge/remove")
def remove(
    viewer: Checked,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
    project: ProjectForm,
    document: Annotated[str, Form(max_length=100)],
) -> Response:
    """Delete a document with its chunks and vectors."""
    scope = projects.visible(db, viewer.principal, project)
    knowledge.remove(
        db, settings, [document], project=scope.name, actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse(f"/knowledge?project={scope.name}", status_code=303)


@router.post("/knowledge/reindex")
def reindex(
    viewer: Checked, db: DbDep, settings: SettingsDep, meta: MetaDep, project: ProjectForm
) -> Response:
    """Re-embed the documents not at the current embedding version; on to that run."""
    scope = projects.visible(db, viewer.principal, project)
    _, run_id = knowledge.reindex(
        db, settings, project=scope.name, actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse(
        f"/runs/{run_id}" if run_id else f"/knowledge?project={scope.name}", status_code=303
    )
