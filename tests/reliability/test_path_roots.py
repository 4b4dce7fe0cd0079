"""Client paths cannot escape the configured roots: a real orchestrator with ORCHESTRATOR_PATH_ROOTS
and a real trainer worker with TRAINER_PATH_ROOTS, each sent `..` escapes, absolute paths outside,
and symlinks inside a root that point outside. Every escape is refused before anything is read, with
a message naming the field and the setting; paths inside, and hub ids for the policy, still work."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from orchestrator.paths import PATH_FIELDS
from raftflow.celery_config import LEDGER_DELIVERIES, ledger_key
from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.processes import ServiceProcess
from raftflow.schemas.jobs import LoraOptions, SFTJob, TrainingConfig, TrainingJob
from raftflow.schemas.runs import RunRequest
from services.trainer.paths import PATH_FIELDS as JOB_PATH_FIELDS
from tests import processes
from tests.processes import start_process
from tests.reliability.test_security import pickle_only_copy

PROMPTS = '{"prompt": "hello"}\n{"prompt": "world"}\n'


def build_tree(tmp: Path) -> dict[str, Path]:
    """``root/`` (the allowed data dir) with a prompt file and a policy dir, ``outside/`` with the same
    plus a secret, and symlinks in the root pointing out: a file, a directory, a policy dir."""
    root, outside = tmp / "root", tmp / "outside"
    for base in (root, outside):
        (base / "policy").mkdir(parents=True)
        (base / "prompts.jsonl").write_text(PROMPTS)
    (outside / "secret.jsonl").write_text('{"prompt": "the secret"}\n')
    (root / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "linkdir").symlink_to(outside)
    (root / "linkpolicy").symlink_to(outside / "policy")
    return {"root": root, "outside": outside}


def test_every_path_field_of_a_run_and_a_job_is_confined() -> None:
    """A new str field on RunRequest or a job must be added to PATH_FIELDS (or this list) on purpose."""
    not_paths = {"generator_backend", "selection", "job_id"}

    def str_fields(model: type) -> set[str]:
        hints = typing.get_type_hints(model)
        return {
            name for name in model.model_fields if str in typing.get_args(hints[name]) or hints[name] is str
        }

    assert str_fields(RunRequest) - not_paths == set(PATH_FIELDS)
    assert str_fields(TrainingJob) - not_paths == set(JOB_PATH_FIELDS)


@pytest.fixture
def orchestrator(tmp_path: Path, start_service) -> tuple[str, dict[str, Path], ServiceProcess]:
    tree = build_tree(tmp_path)
    env = {
        "ORCHESTRATOR_PATH_ROOTS": json.dumps([str(tree["root"])]),
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
        # Nothing listens there: accepted runs fail fast in the background, which is not under test.
        "GENERATOR_URL": "http://127.0.0.1:9",
        "REWARDER_URL": "http://127.0.0.1:9",
        "ORCHESTRATOR_RETRY_SECONDS": "0.5",
    }
    process, url = start_service("orchestrator", env=env, timeout=60)
    return url, tree, process


def post_run(url: str, **body: str) -> httpx.Response:
    return httpx.post(f"{url}/iterations", json={"num_iterations": 1, **body}, timeout=30)


def test_run_paths_outside_the_roots_get_422_naming_field_and_setting(orchestrator, reliability_log) -> None:
    url, tree, process = orchestrator
    root, outside = tree["root"], tree["outside"]
    good = {"policy": str(root / "policy"), "prompts": str(root / "prompts.jsonl")}
    escapes = {
        "`..` out of the root": ("prompts", str(root / ".." / "outside" / "secret.jsonl")),
        "absolute path outside": ("prompts", str(outside / "prompts.jsonl")),
        "symlinked file inside the root": ("prompts", str(root / "link.jsonl")),
        "path through a symlinked dir": ("eval_prompts", str(root / "linkdir" / "secret.jsonl")),
        "policy via `..`": ("policy", f"{root}/policy/../../outside/policy"),
        "policy symlinked out": ("policy", str(root / "linkpolicy")),
        # Shaped like a hub id, but a local directory (relative to the orchestrator's working
        # directory, the repo): it is read from disk, so it is a path and confined.
        "hub-id-shaped local dir": ("policy", "services/trainer"),
        "hub-id-shaped `..`": ("policy", "policy/.."),
    }
    for name, (field, value) in escapes.items():
        response = post_run(url, **{**good, field: value})
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field], (name, detail)
        assert "ORCHESTRATOR_PATH_ROOTS" in detail["msg"] and "outside the allowed roots" in detail["msg"]
    assert httpx.get(f"{url}/iterations", timeout=10).json() == []  # no run was created

    # Inside the root (through `..` that stays inside, too), in ARTIFACTS_DIR, and a hub id policy.
    artifacts_prompts = Path(process.env["ARTIFACTS_DIR"]) / "prompts.jsonl"
    artifacts_prompts.write_text(PROMPTS)
    allowed = [
        good,
        {
            **good,
            "prompts": str(root / "policy" / ".." / "prompts.jsonl"),
            "eval_prompts": str(artifacts_prompts),
        },
        {**good, "policy": "openai-community/gpt2"},
    ]
    for body in allowed:
        response = post_run(url, **body)
        assert response.status_code == 202, (body, response.text)
    created = httpx.get(f"{url}/iterations", timeout=10).json()
    stored = {run["request"]["prompts"] for run in created}
    assert stored == {str((root / "prompts.jsonl").resolve())}  # runs use the resolved, checked path
    assert "openai-community/gpt2" in {run["request"]["policy"] for run in created}
    reliability_log(
        "security",
        "run paths escaping ORCHESTRATOR_PATH_ROOTS",
        "POST /iterations to a real orchestrator with one root: " + "; ".join(escapes),
        f"all {len(escapes)} got 422 on the escaping field (prompts, eval_prompts or policy) naming the "
        f"setting, and no run was created; {len(allowed)} bodies inside the root, in ARTIFACTS_DIR and "
        "with a hub id policy got 202 and store the resolved paths",
        requests=len(escapes) + len(allowed),
    )


def test_without_roots_paths_are_unconfined_and_start_up_warns(tmp_path: Path, start_service) -> None:
    tree = build_tree(tmp_path)
    env = {
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
        "GENERATOR_URL": "http://127.0.0.1:9",
        "REWARDER_URL": "http://127.0.0.1:9",
        "ORCHESTRATOR_RETRY_SECONDS": "0.5",
    }
    process, url = start_service("orchestrator", env=env, timeout=60)
    response = post_run(url, policy=str(tree["outside"] / "policy"), prompts=str(tree["root"] / "link.jsonl"))
    assert response.status_code == 202, response.text
    assert process.log_path.read_text().count("ORCHESTRATOR_PATH_ROOTS is not set") == 1


# -- trainer worker -----------------------------------------------------------------------------------


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """A real ``python -m services.trainer`` on the test Redis (as in tests/trainer/conftest.py)."""
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        process = start_process(
            "services.trainer",
            f"--hostname=paths{len(started)}@%h",
            log_dir=tmp_path,
            name=f"worker-{len(started)}",
            # No preload: these jobs must fail before training, so torch is never needed.
            env={"REDIS_URL": redis_url, "TRAINER_PRELOAD": "false", **env},
        )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop(timeout=5)


def test_jobs_outside_the_roots_fail_before_reading_or_writing(
    tmp_path: Path, start_worker, redis_url: str, reliability_log
) -> None:
    tree = build_tree(tmp_path)
    root, outside = tree["root"], tree["outside"]
    (root / "sft.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    start_worker(TRAINER_PATH_ROOTS=json.dumps([str(root)]))
    base = {"model": str(root / "policy"), "data": str(root / "sft.jsonl"), "output_dir": str(root / "out")}
    escapes = {
        "data symlinked out of the root": ("data", {"data": str(root / "link.jsonl")}),
        "data through a symlinked dir": ("data", {"data": str(root / "linkdir" / "secret.jsonl")}),
        "model via `..`": ("model", {"model": f"{root}/../outside/policy"}),
        "model symlinked out": ("model", {"model": str(root / "linkpolicy")}),
        "output_dir absolute outside": ("output_dir", {"output_dir": str(outside / "ckpt")}),
        "output_dir through a symlinked dir": ("output_dir", {"output_dir": str(root / "linkdir" / "ckpt")}),
        "job_id `..`": ("job_id", {"job_id": ".."}),
    }
    outside_before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    with TrainerClient(redis_url, retry_seconds=10) as client:
        for index, (name, (field, change)) in enumerate(escapes.items()):
            job = SFTJob.model_validate({"job_id": f"escape-{index}", **base, **change})
            client.submit(job)
            with pytest.raises(JobFailed) as failed:
                client.wait(job.job_id, timeout=60, poll_interval=0.1)
            message = failed.value.message
            assert f"{field} " in message or f"{field} '" in message, (name, message)
            if field != "job_id":
                assert "TRAINER_PATH_ROOTS" in message and "nothing was read or written" in message
            assert "JobPathNotAllowed" in message, (name, message)
            # Refused before the ledger counted a delivery: the job never started.
            assert not redis.Redis.from_url(redis_url).hexists(ledger_key(job.job_id), LEDGER_DELIVERIES)
    assert not (root / "out").exists()
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == outside_before
    assert re.search(r"TRAINER_PATH_ROOTS is not set", (tmp_path / "worker-0.log").read_text()) is None
    reliability_log(
        "security",
        "training jobs escaping TRAINER_PATH_ROOTS",
        "jobs pushed through Redis to a real worker with one root: " + "; ".join(escapes),
        f"all {len(escapes)} failed with JobPathNotAllowed naming the field (and the setting) before the "
        "delivery ledger or any file was touched; no output dir was created and nothing outside changed",
        jobs=len(escapes),
    )


# -- what a checkpoint names: its weight files, its symlinks, a LoRA adapter's base -----------------


class HubRecorder:
    """A loopback HTTP server standing in for the model hub (``HF_ENDPOINT``): answers 404 to
    everything and records each path asked for, so a test can tell that nothing tried a download."""

    def __init__(self) -> None:
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                paths.append(self.path)
                self.send_error(404)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def lora_adapter(policy: Path, target: Path, base: str) -> Path:
    """A LoRA adapter of ``policy`` saved (peft, safetensors) in ``target`` with its tokenizer, as an
    unmerged LoRA job saves it, its adapter_config.json then naming ``base`` as the model it applies to."""
    from peft import LoraConfig, get_peft_model

    from raftflow.modeling import load_causal_lm, load_tokenizer

    model = get_peft_model(
        load_causal_lm(str(policy)), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"])
    )
    model.save_pretrained(target)
    load_tokenizer(str(policy)).save_pretrained(target)
    config = json.loads((target / "adapter_config.json").read_text())
    (target / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    return target


@pytest.fixture(scope="module")
def model_tree(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``build_tree`` with the tiny policy copied into ``root/policy`` and ``outside/policy``, and LoRA
    adapters of it inside the root whose base is: the policy in the root, the one outside, a hub id,
    and the adapter with the outside base (a chain)."""
    tree = build_tree(tmp_path_factory.mktemp("model-tree"))
    root, outside = tree["root"], tree["outside"]
    for base in (root, outside):
        (base / "policy").rmdir()
        shutil.copytree(tiny_models["policy"], base / "policy")
    bases = {
        "adapter-inside": str(root / "policy"),
        "adapter-outside": str(outside / "policy"),
        "adapter-dotdot": f"{root}/policy/../../outside/policy",
        "adapter-hub": "raftflow-test/no-such-model",
        "adapter-chain": str(root / "adapter-outside"),
    }
    for name, base in bases.items():
        tree[name] = lora_adapter(tiny_models["policy"], root / name, base)
    return tree


@pytest.fixture(scope="module")
def hub() -> Iterator[HubRecorder]:
    recorder = HubRecorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def confined_generator(
    model_tree: dict[str, Path], hub: HubRecorder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real generator on ``root/policy`` with GENERATOR_LOAD_ROOTS set to the root, online, with the
    hub at ``hub`` (a download attempt would show there)."""
    logs = tmp_path_factory.mktemp("confined-generator")
    process, url = processes.start_service(
        "services.generator",
        "--model",
        str(model_tree["root"] / "policy"),
        log_dir=logs,
        name="generator-confined",
        env={
            "GENERATOR_LOAD_ROOTS": json.dumps([str(model_tree["root"])]),
            "HF_HUB_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(logs / "hub-cache"),
        },
        timeout=120,
    )
    try:
        yield url
    finally:
        process.stop()


def test_generator_refuses_an_adapter_whose_base_leaves_the_roots(
    confined_generator: str, model_tree: dict[str, Path], hub: HubRecorder, reliability_log
) -> None:
    url = confined_generator
    refused = {
        "base outside the roots": ("path", "adapter-outside", "outside the allowed roots"),
        "base through `..`": ("path", "adapter-dotdot", "outside the allowed roots"),
        "base a hub id": ("path", "adapter-hub", "is a hub id"),
        "base an adapter whose base is outside": ("path", "adapter-chain", "outside the allowed roots"),
        "reference with its base outside": ("reference", "adapter-outside", "outside the allowed roots"),
    }
    asked_before = list(hub.paths)
    for name, (field, adapter, reason) in refused.items():
        response = httpx.post(f"{url}/v1/load", json={field: str(model_tree[adapter])}, timeout=120)
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field], (name, detail)
        message = detail["msg"]
        assert "adapter_config.json" in message and "base_model_name_or_path" in message, (name, message)
        assert reason in message and "GENERATOR_LOAD_ROOTS" in message, (name, message)
    assert hub.paths == asked_before, f"the generator asked the hub for {hub.paths[len(asked_before) :]}"

    # An adapter of the policy inside the root still loads (merged onto its base) and serves.
    loaded = httpx.post(f"{url}/v1/load", json={"path": str(model_tree["adapter-inside"])}, timeout=120)
    assert loaded.status_code == 200, loaded.text
    served = httpx.post(f"{url}/v1/completions", json={"prompt": "hello", "max_tokens": 2}, timeout=60)
    assert served.status_code == 200, served.text
    reliability_log(
        "security",
        "LoRA adapters whose base model leaves GENERATOR_LOAD_ROOTS",
        "POST /v1/load to a real generator (online, its hub a local recorder) of adapters inside the root "
        "whose adapter_config.json names: " + "; ".join(refused),
        f"all {len(refused)} got 422 on the field naming adapter_config.json's base_model_name_or_path "
        "and the setting; the hub was asked nothing; an adapter of the policy inside the root loaded",
        requests=len(refused) + 2,
    )


def test_generator_refuses_a_checkpoint_whose_files_lead_outside_the_roots(
    confined_generator: str, model_tree: dict[str, Path], reliability_log
) -> None:
    """A checkpoint inside the root whose tokenizer_config.json names a tokenizer file outside it, or
    that holds a symlink out of it: transformers would read those files, so /v1/load refuses both, with
    the same message whether the outside file exists or not."""
    root, outside = model_tree["root"], model_tree["outside"]
    (outside / "tokenizer.json").write_text((root / "policy" / "tokenizer.json").read_text())
    cases: dict[str, Path] = {}
    for name, target in (("tokenizer_file to an existing file", outside / "tokenizer.json"),
                         ("tokenizer_file to a missing file", outside / "missing.json")):  # fmt: skip
        checkpoint = shutil.copytree(root / "policy", root / f"tok-{len(cases)}")
        config = json.loads((checkpoint / "tokenizer_config.json").read_text())
        config["tokenizer_file"] = str(target)
        (checkpoint / "tokenizer_config.json").write_text(json.dumps(config))
        cases[name] = checkpoint
    linked = shutil.copytree(root / "policy", root / "tok-link")
    (linked / "vocab-extra.json").symlink_to(outside / "tokenizer.json")
    cases["a symlink out of the directory"] = linked
    messages = []
    for name, checkpoint in cases.items():
        response = httpx.post(f"{confined_generator}/v1/load", json={"path": str(checkpoint)}, timeout=120)
        assert response.status_code == 422, (name, response.text)
        message = response.json()["detail"][0]["msg"]
        assert "leads outside" in message and "GENERATOR_LOAD_ROOTS" in message, (name, message)
        messages.append(message.replace(str(checkpoint), "CKPT").replace("missing.json", "tokenizer.json"))
    assert messages[0] == messages[1], "the refusal tells whether the outside file exists"
    reliability_log(
        "security",
        "checkpoints whose files lead outside GENERATOR_LOAD_ROOTS",
        "POST /v1/load of checkpoints inside the root: tokenizer_config.json naming a tokenizer_file "
        "outside (existing, missing), and a symlink out of the directory",
        f"all {len(cases)} got 422 naming the file and the setting; the existing and missing targets "
        "gave the same message",
        requests=len(cases),
    )


def test_a_job_on_an_adapter_whose_base_leaves_the_roots_fails_before_training(
    model_tree: dict[str, Path], start_worker, redis_url: str, reliability_log
) -> None:
    root = model_tree["root"]
    (root / "sft.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    start_worker(TRAINER_PATH_ROOTS=json.dumps([str(root)]))
    adapters = ("adapter-outside", "adapter-dotdot", "adapter-chain")
    with TrainerClient(redis_url, retry_seconds=10) as client:
        for adapter in adapters:
            job = SFTJob(
                job_id=f"lora-{adapter}",
                model=str(model_tree[adapter]),
                data=str(root / "sft.jsonl"),
                output_dir=str(root / "out"),
                training=TrainingConfig(lora=LoraOptions(merge=False)),  # trains the adapter on its base
            )
            client.submit(job)
            with pytest.raises(JobFailed) as failed:
                client.wait(job.job_id, timeout=60, poll_interval=0.1)
            message = failed.value.message
            assert "JobPathNotAllowed" in message and "model " in message, (adapter, message)
            assert "base_model_name_or_path" in message, (adapter, message)
            assert "TRAINER_PATH_ROOTS" in message, (adapter, message)
            assert not redis.Redis.from_url(redis_url).hexists(ledger_key(job.job_id), LEDGER_DELIVERIES)
    assert not (root / "out").exists()
    reliability_log(
        "security",
        "training jobs on LoRA adapters whose base leaves TRAINER_PATH_ROOTS",
        "SFT jobs pushed through Redis to a real worker with one root, each on an adapter inside the root "
        "whose base is outside (absolute, through `..`, through another adapter)",
        f"all {len(adapters)} failed with JobPathNotAllowed naming model, base_model_name_or_path and the "
        "setting, before the delivery ledger counted them or any file was written",
        jobs=len(adapters),
    )


def bad_checkpoints(tiny_models, model_tree: dict[str, Path], tmp: Path) -> dict[str, tuple[Path, str]]:
    """Checkpoint directories inside the root the external-trainer check must refuse: name ->
    (directory, what the 422 says)."""
    root, outside = model_tree["root"], model_tree["outside"]
    (outside / "shard.safetensors").write_bytes((tiny_models["policy"] / "model.safetensors").read_bytes())

    def copy(name: str, index: object | None = None) -> Path:
        target = shutil.copytree(tiny_models["policy"], root / "checkpoints" / name)
        if index is not None:
            (target / "model.safetensors").unlink()
            text = index if isinstance(index, str) else json.dumps(index)
            (target / "model.safetensors.index.json").write_text(text)
        return target

    def escaping(target: str) -> dict:
        return {"metadata": {}, "weight_map": {"transformer.wte.weight": target}}

    linked = copy("weights-linked-out")
    (linked / "model.safetensors").unlink()
    (linked / "model.safetensors").symlink_to(outside / "shard.safetensors")
    linked_missing = copy("weights-linked-nowhere")
    (linked_missing / "model.safetensors").unlink()
    (linked_missing / "model.safetensors").symlink_to(outside / "no-such.safetensors")
    tokenizer_out = copy("tokenizer-file-out")
    settings = json.loads((tokenizer_out / "tokenizer_config.json").read_text())
    settings["tokenizer_file"] = str(outside / "shard.safetensors")
    (tokenizer_out / "tokenizer_config.json").write_text(json.dumps(settings))
    with_adapter = copy("merged-beside-adapter")
    for file in model_tree["adapter-outside"].iterdir():
        shutil.copy(file, with_adapter / file.name)
    return {
        "index {}": (copy("index-empty", {}), "has no weight_map"),
        "index not JSON": (copy("index-not-json", "{not json"), "is not a readable JSON file"),
        "index weight_map a list": (copy("index-list", {"weight_map": []}), "has no weight_map"),
        "weight_map `..` to an existing file": (
            copy("index-out", escaping("../../../outside/shard.safetensors")),
            "not the name of a file in the checkpoint directory",
        ),
        "weight_map `..` to no file": (
            copy("index-out-nowhere", escaping("../../../outside/no-such.safetensors")),
            "not the name of a file in the checkpoint directory",
        ),
        "weight_map absolute path": (
            copy("index-absolute", escaping(str(outside / "shard.safetensors"))),
            "not the name of a file in the checkpoint directory",
        ),
        "weights symlinked out": (linked, "leads outside the checkpoint directory and the allowed roots"),
        "weights symlinked to nothing": (
            linked_missing,
            "leads outside the checkpoint directory and the allowed roots",
        ),
        "tokenizer_file outside": (tokenizer_out, "leads outside the checkpoint directory"),
        "adapter with its base outside": (with_adapter, "base_model_name_or_path"),
        "pickle-only weights": (
            pickle_only_copy(tiny_models["policy"], root / "checkpoints" / "pickle-only"),
            "only pickle weights (pytorch_model.bin)",
        ),
    }


def test_external_checkpoints_are_read_only_inside_and_refusals_keep_the_run_waiting(
    tiny_models,
    model_tree: dict[str, Path],
    confined_generator: str,
    start_service,
    tmp_path: Path,
    reliability_log,
) -> None:
    """A ``trainer: external`` run waits for a checkpoint; each bad one is a 422 naming the file and
    the problem (never a 500), nothing outside the root is opened (an escaping name gets the same
    answer whether its target exists or not), and the run keeps waiting until a good one comes."""
    root = model_tree["root"]
    _, rewarder_url = start_service("services.rewarder", "--function", "raftflow.rewards.format:well_formed")
    _, url = start_service(
        "orchestrator",
        env={
            "ORCHESTRATOR_PATH_ROOTS": json.dumps([str(root)]),
            "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
            "GENERATOR_URL": confined_generator,
            "REWARDER_URL": rewarder_url,
        },
        timeout=60,
    )
    body = {
        "policy": str(root / "policy"),
        "prompts": str(root / "prompts.jsonl"),
        "num_iterations": 1,
        "prompts_per_iteration": 2,
        "k": 2,
        "max_new_tokens": 4,
        "seed": 0,
        "trainer": "external",
    }
    # A policy that is an adapter on a base outside the roots is refused like the policy itself.
    adapter_policy = {**body, "policy": str(model_tree["adapter-outside"])}
    refused = httpx.post(f"{url}/iterations", json=adapter_policy, timeout=30)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"][0]
    assert detail["loc"] == ["body", "policy"] and "base_model_name_or_path" in detail["msg"], detail
    created = httpx.post(f"{url}/iterations", json=body, timeout=30)
    assert created.status_code == 202, created.text
    run = f"{url}/iterations/{created.json()['id']}"
    view = wait_for_status(run, {"awaiting_checkpoint", "failed", "cancelled", "succeeded"})
    assert view["status"] == "awaiting_checkpoint", view["error"]

    checkpoints = bad_checkpoints(tiny_models, model_tree, tmp_path)
    messages = {}
    for name, (path, problem) in checkpoints.items():
        response = httpx.post(f"{run}/checkpoint", json={"path": str(path)}, timeout=60)
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "path"] and problem in detail["msg"], (name, detail)
        messages[name] = detail["msg"].replace(str(path), "DIR")
    # An escaping name is refused before it is opened: the answer cannot tell whether the file exists.
    for exists, missing in (
        ("weight_map `..` to an existing file", "weight_map `..` to no file"),
        ("weights symlinked out", "weights symlinked to nothing"),
    ):
        same = messages[exists].replace("shard", "no-such")
        assert same == messages[missing], (messages[exists], messages[missing])
    assert "ORCHESTRATOR_PATH_ROOTS" in messages["weights symlinked out"]
    assert httpx.get(run, timeout=10).json()["status"] == "awaiting_checkpoint"
    assert not list((tmp_path / "artifacts").rglob("posted_checkpoint.json"))

    good = shutil.copytree(tiny_models["policy"], root / "checkpoints" / "good")
    accepted = httpx.post(f"{run}/checkpoint", json={"path": str(good)}, timeout=60)
    assert accepted.status_code == 200, accepted.text
    view = wait_for_status(run, {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    assert view["iterations"][0]["checkpoint"] == str(good.resolve())
    reliability_log(
        "security",
        "external-trainer checkpoints that read outside their directory or cannot be served",
        "POST /iterations/{id}/checkpoint to a real orchestrator (one root) whose trainer: external run "
        "waits: " + "; ".join(checkpoints) + "; and POST /iterations with an adapter on an outside base "
        "as the policy",
        f"all {len(checkpoints)} got 422 on path naming the file and the problem (no 500); an escaping "
        "weight name or symlink got the same answer whether its target existed or not; the run kept "
        "waiting, then accepted a good checkpoint and succeeded; the adapter policy got 422 on policy",
        requests=len(checkpoints) + 2,
    )


def wait_for_status(run_url: str, statuses: set[str], timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    view: dict = {}
    while time.monotonic() < deadline:
        view = httpx.get(run_url, timeout=10).json()
        if view["status"] in statuses:
            return view
        time.sleep(0.3)
    raise TimeoutError(f"{run_url} still {view.get('status')} after {timeout} s")


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
