"""``/iterations/{run_id}/samples``: what RAFT sampled, scored and kept, for the dashboard's samples
browser (and anyone auditing a run). Read-only, behind the same token as the rest of ``/iterations``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from orchestrator.sample_views import (
    EvalPromptHistory,
    IterationSamples,
    SamplesNotReady,
    eval_history,
    iteration_samples,
)
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import RunStore
from raftflow.schemas.errors import UNAUTHORIZED, error_responses
from raftflow.schemas.runs import RunRequest

router = APIRouter(prefix="/iterations", tags=["samples"], responses=UNAUTHORIZED)
NOT_FOUND = error_responses(404, e404="No run with this id, or the iteration has no scored samples yet.")
MAX_PROMPTS_PER_PAGE = 200


def _store(request: Request) -> RunStore:
    return request.app.state.store


def _settings(request: Request) -> OrchestratorSettings:
    return request.app.state.manager.settings


@router.get("/{run_id}/samples/{iteration}", response_model=IterationSamples, responses=NOT_FOUND)
def get_iteration_samples(
    run_id: str,
    iteration: int = Path(ge=0, le=100_000, description="The iteration's index (0-based)."),
    q: str = Query(default="", max_length=1000, description="Only prompts containing this text (any case)."),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    limit: int = Query(default=50, ge=1, le=MAX_PROMPTS_PER_PAGE, description="Prompts per page."),
    store: RunStore = Depends(_store),
    settings: OrchestratorSettings = Depends(_settings),
) -> IterationSamples:
    """One iteration's prompts, each with its K samples: training reward, gold reward and per-sample
    KL when the run has them, the kept sample(s) marked, and why a sample was excluded from ranking."""
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    request = RunRequest.model_validate(row.request)
    directory = settings.run_dir(run_id) / f"iter-{iteration:03d}"
    try:
        return iteration_samples(directory, iteration, request, q, offset, limit)
    except SamplesNotReady as exc:
        raise HTTPException(status_code=404, detail=f"run {run_id}: {exc}") from None


@router.get("/{run_id}/eval-samples", response_model=list[EvalPromptHistory], responses=NOT_FOUND)
def get_eval_samples(
    run_id: str, store: RunStore = Depends(_store), settings: OrchestratorSettings = Depends(_settings)
) -> list[EvalPromptHistory]:
    """Each held-out prompt (the run's eval_prompts) with the response of the policy after every
    finished iteration: the same prompt compared across iterations. Empty without eval_prompts."""
    row = store.get(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    run_dir = settings.run_dir(run_id)
    done = sorted(it.index for it in row.iterations if it.stage == "done")
    return eval_history([(index, run_dir / f"iter-{index:03d}") for index in done])
