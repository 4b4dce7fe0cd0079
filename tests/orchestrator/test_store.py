"""The run store on SQLite and PostgreSQL: state transitions are durable and resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from orchestrator.db import Base, make_engine, make_sessionmaker
from orchestrator.raft_loop import prompt_slice, shuffled
from orchestrator.store import RunStore, to_view
from raftflow.schemas.runs import RunRequest, StageProgress


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield RunStore(make_sessionmaker(engine))
    Base.metadata.drop_all(engine)
    engine.dispose()


def test_store_tracks_a_run_through_its_iterations(store: RunStore) -> None:
    request = RunRequest(policy="org/model", prompts="p.jsonl", num_iterations=2)
    row = store.create(request)
    assert store.active_run_ids() == [row.id]
    store.set_status(row.id, "running")
    store.start_iteration(row.id, 0)
    store.start_iteration(row.id, 0)  # a resumed iteration does not duplicate its row
    store.set_stage(row.id, 0, "sample", StageProgress(stage="sample", done=8, total=32, unit="samples"))
    view = to_view(store.get(row.id), "http://x")
    assert view.progress.fraction == 0.25
    assert 0 < view.percent_complete < 50

    # Progress only moves forward through the stages, gold scoring included (it has its own stage).
    seen = []
    for stage in ("score", "gold_score", "select", "train"):
        store.set_stage(row.id, 0, stage, StageProgress(stage=stage, done=0, total=4))
        seen.append(to_view(store.get(row.id), "http://x").percent_complete)
    assert seen == sorted(seen) and len(set(seen)) == 4 and seen[-1] < 50

    store.finish_iteration(row.id, 0, "/ckpt/0", {"on_policy_reward": 0.5})
    view = to_view(store.get(row.id), "http://x")
    assert view.policy == "/ckpt/0" and view.current_iteration == 1
    assert view.iterations[0].metrics == {"on_policy_reward": 0.5}
    assert view.percent_complete == 50.0

    assert store.cancel(row.id) is True
    assert store.cancel(row.id) is False
    assert store.active_run_ids() == []


def test_prompt_order_is_seeded_and_wraps_around() -> None:
    prompts = [f"p{i}" for i in range(5)]
    order = shuffled(prompts, seed=1)
    assert order == shuffled(prompts, seed=1) and sorted(order) == prompts
    assert prompt_slice(order, 0, 3) == order[:3]
    assert prompt_slice(order, 1, 3) == order[3:] + order[:1]
    with pytest.raises(ValueError):
        shuffled([], seed=0)


def test_postgres_url_really_is_postgres(postgres_url: str) -> None:
    with sqlalchemy.create_engine(postgres_url).connect() as conn:
        assert "PostgreSQL" in conn.execute(sqlalchemy.text("select version()")).scalar()
