"""``/iterations``: start, inspect, list, cancel and plot RAFT *runs*; hand an external trainer's
checkpoint to a waiting run.

The path keeps its first name (users and scripts know ``POST /iterations``), but what it serves is a
run: one ``POST /iterations`` starts a whole RAFT run of ``num_iterations`` iterations, and
``/iterations/{run_id}`` is that run. In the code the resource is called a run throughout."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from orchestrator.paths import PATH_FIELDS, confine_run
from orchestrator.plotting import plot_run
from orchestrator.raft_loop import POSTED_CHECKPOINT
from orchestrator.run_limits import check_run_size
from orchestrator.runner import RunManager
from orchestrator.service_urls import check_run_urls
from orchestrator.store import RunStore, to_view
from orchestrator.trackers import missing_libraries
from raftflow.atomic import write_json_atomic
from raftflow.checkpoints import CheckpointLeavesRoots, CheckpointRejected, check_checkpoint
from raftflow.data import DataError, load_pairs, load_prompts
from raftflow.paths import ADAPTER_CONFIG, PathNotAllowed, confine
from raftflow.schemas.errors import BODY_ERRORS, UNAUTHORIZED, error_responses
from raftflow.schemas.runs import CheckpointSubmission, RunCreated, RunRequest, RunView
from raftflow.server import limit_error

# The app puts the whole router behind the bearer check: every route can answer 401.
router = APIRouter(prefix="/iterations", tags=["iterations"], responses=UNAUTHORIZED)

# Far past any store's size, and inside every SQL integer type: an int over 64 bits was a 500 (SQLite's
# OverflowError), not a 422.
MAX_OFFSET = 2**31 - 1
NO_RUN = error_responses(404, e404="No run with this id.")

# owner/name: what a hub id looks like. Anything else must be an existing local directory.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _store(request: Request) -> RunStore:
    return request.app.state.store


def _manager(request: Request) -> RunManager:
    return request.app.state.manager


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=RunCreated, responses=BODY_ERRORS)
def start_run(
    body: RunRequest,
    request: Request,
    response: Response,
    store: RunStore = Depends(_store),
    manager: RunManager = Depends(_manager),
) -> RunCreated:
    """Validate the datasets up front (a typo should be a 422 now, not a failed run in an hour), then
    queue the run."""
    check_run_urls(body, manager.settings)  # before anything is sent to them
    check_run_size(body, manager.settings)
    body = confine_run(body, manager.settings)  # before anything is read from those paths
    _check_policy(body.policy)
    _check_adapter_training(body)
    if body.report_to is None:  # stored resolved: a resumed run keeps the trackers it started with
        body = body.model_copy(update={"report_to": list(manager.settings.report_to)})
    missing = missing_libraries(body.report_to)
    if missing:
        raise limit_error(
            "report_to",
            f"tracker library not installed on the orchestrator: {', '.join(missing)} "
            "(pip install 'raftflow[trackers]')",
            value=body.report_to,
        )
    for field, load in (
        ("prompts", load_prompts),
        ("eval_prompts", load_prompts),
        ("eval_pairs", load_pairs),
    ):
        path = getattr(body, field)
        if path is None:
            continue
        try:
            load(path)
        except DataError as exc:
            raise limit_error(field, str(exc), value=path) from exc
    row = store.create(body)
    manager.submit(row.id)
    url = str(request.url_for("get_run", run_id=row.id))
    response.headers["Location"] = url
    return RunCreated(id=row.id, url=url, status="queued")


@router.get("", response_model=list[RunView])
def list_runs(
    request: Request,
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    store: RunStore = Depends(_store),
) -> list[RunView]:
    return [to_view(row, str(request.base_url)) for row in store.list(limit, offset)]


@router.get("/{run_id}", response_model=RunView, name="get_run", responses=NO_RUN)
def get_run(run_id: str, request: Request, store: RunStore = Depends(_store)) -> RunView:
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    return to_view(row, str(request.base_url))


@router.post(
    "/{run_id}/cancel",
    response_model=RunView,
    responses={**NO_RUN, **error_responses(409, e409="The run has already finished.")},
)
def cancel_run(
    run_id: str,
    request: Request,
    store: RunStore = Depends(_store),
    manager: RunManager = Depends(_manager),
) -> RunView:
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    if not manager.cancel(run_id):
        raise HTTPException(status_code=409, detail=f"run {run_id} is already {row.status}")
    return to_view(store.get(run_id), str(request.base_url))


@router.post(
    "/{run_id}/checkpoint",
    response_model=RunView,
    responses={**NO_RUN, **BODY_ERRORS, **error_responses(409, e409="The run is not awaiting a checkpoint.")},
)
def submit_checkpoint(
    run_id: str,
    body: CheckpointSubmission,
    request: Request,
    store: RunStore = Depends(_store),
    manager: RunManager = Depends(_manager),
) -> RunView:
    """Hand a ``trainer: external`` run the checkpoint fine-tuned on its selected data. It is confined
    to the path roots and checked as a servable causal LM first: a bad one is a 422 naming the problem
    and the run keeps waiting. The run picks an accepted one up within a second."""
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    if row.status != "awaiting_checkpoint":
        trainer = RunRequest.model_validate(row.request).trainer
        why = "" if trainer == "external" else " (its trainer is 'queue': it trains its own checkpoints)"
        raise HTTPException(
            status_code=409, detail=f"run {run_id} is {row.status}, not awaiting a checkpoint{why}"
        )
    roots = manager.settings.allowed_roots()
    try:
        path = confine(body.path, roots)
    except PathNotAllowed as exc:
        raise limit_error("path", f"{exc} (setting ORCHESTRATOR_PATH_ROOTS)", value=body.path) from exc
    try:  # what it reads stays inside the roots too; an adapter's base may be a hub id, like a policy
        check_checkpoint(path, roots, hub_ids=PATH_FIELDS["policy"])
    except CheckpointRejected as exc:
        setting = " (setting ORCHESTRATOR_PATH_ROOTS)" if isinstance(exc, CheckpointLeavesRoots) else ""
        raise limit_error("path", f"{exc}{setting}", value=body.path) from exc
    posted = manager.settings.run_dir(run_id) / f"iter-{row.current_iteration:03d}" / POSTED_CHECKPOINT
    write_json_atomic(posted, {"path": str(Path(path).resolve())})
    return to_view(store.get(run_id), str(request.base_url))


@router.get(
    "/{run_id}/metrics.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The run's metrics plot."}, **NO_RUN},
)
def run_plot(run_id: str, store: RunStore = Depends(_store)) -> Response:
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    metrics = [it.metrics for it in row.iterations if it.stage == "done"]
    return Response(plot_run(run_id, metrics), media_type="image/png")


def _check_adapter_training(body: RunRequest) -> None:
    """An unmerged LoRA policy (an adapter directory) can only be trained as an adapter: without
    ``training.lora`` the job froze the base and failed on its first step ("element 0 of tensors does
    not require grad"), an iteration in. Refuse it before the run starts."""
    if body.trainer != "queue" or body.training.lora is not None:
        return
    if (Path(body.policy) / ADAPTER_CONFIG).is_file():
        raise limit_error(
            "training.lora",
            f"the policy {body.policy} is an unmerged LoRA adapter: set training.lora (e.g. {{}}) to go "
            "on training the adapter, or merge it into its base and pass the merged checkpoint",
            value=None,
        )


def _check_policy(policy: str) -> None:
    if Path(policy).is_dir() or _HUB_ID.match(policy):
        return
    raise limit_error(
        "policy",
        f"{policy!r} is neither an existing checkpoint directory nor a hub id (owner/name)",
        value=policy,
    )
