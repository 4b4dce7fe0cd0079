"""Start the vLLM OpenAI server the ``vllm`` engine drives, in vLLM's own environment.

vLLM cannot live in raftflow's venv (it pins transformers 5.x; raftflow's TGI client pins
huggingface-hub < 1.0), so it runs as a child process of the generator from another interpreter
(``make venv-vllm`` builds ``.venv-vllm``; in compose it is a container of its own and the generator
attaches to it by URL instead). The flags chosen here are the ones RAFT needs, not vLLM's defaults:

- ``VLLM_SERVER_DEV_MODE=1`` exposes ``/collective_rpc``, ``/reset_prefix_cache`` and ``/sleep``: hot
  reload from disk goes through them.
- ``--logprobs-mode processed_logprobs``: sampled tokens' log-probabilities under the sampling
  distribution (temperature, top-k, top-p applied), which is what raftflow's API documents (and TGI
  reports); vLLM's default is the raw model's.
- ``--enable-lora`` with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``: adapters load at run time.
- ``--seed``: the engine's seed. On CPU a per-request seed kills the engine ("CPU Generator does not
  use offset"), so the engine does not forward request seeds there (see the engine's docstring).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from raftflow.processes import ServiceProcess
from raftflow.server import free_port
from services.generator.settings import GeneratorSettings

SERVED_NAME = "base"
"""The name vLLM serves the start-up checkpoint under; adapters get versioned names beside it."""


def default_vllm_python() -> str:
    """``.venv-vllm/bin/python`` beside the project (what ``make venv-vllm`` builds)."""
    return str(Path(__file__).resolve().parents[3] / ".venv-vllm" / "bin" / "python")


def vllm_command(settings: GeneratorSettings, port: int, on_gpu: bool) -> list[str]:
    assert settings.model is not None  # GeneratorSettings enforces it for a launched vLLM
    python = settings.vllm_python or default_vllm_python()
    args = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        settings.model,
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        settings.vllm_dtype,
        "--seed",
        str(settings.vllm_seed),
        "--logprobs-mode",
        "processed_logprobs",
        "--max-logprobs",
        "5",  # raftflow's API caps logprobs at 5
        "--disable-log-stats",
    ]
    if settings.vllm_max_model_len:
        args += ["--max-model-len", str(settings.vllm_max_model_len)]
    if settings.vllm_enable_lora:
        args += ["--enable-lora", "--max-lora-rank", str(settings.vllm_max_lora_rank), "--max-loras", "2"]
    if on_gpu:
        args += ["--gpu-memory-utilization", str(settings.vllm_gpu_memory_utilization)]
        if settings.vllm_sleep_mode:
            args.append("--enable-sleep-mode")
    return args + list(settings.vllm_extra_args)


def vllm_env(settings: GeneratorSettings) -> dict[str, str]:
    env = {
        "VLLM_SERVER_DEV_MODE": "1",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": str(settings.vllm_kv_cache_gib),
        # vLLM must not reach for the hub (offline machines) for a local checkpoint.
        "HF_HUB_OFFLINE": os.environ.get(
            "HF_HUB_OFFLINE", "1" if Path(settings.model or "").is_dir() else "0"
        ),
    }
    if settings.torch_threads:
        env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        env["OMP_NUM_THREADS"] = str(settings.torch_threads)
    return env


def launch_vllm(settings: GeneratorSettings, log_dir: Path, on_gpu: bool) -> tuple[ServiceProcess, str]:
    """Start the server; returns the process and its base URL (not yet healthy: the caller waits)."""
    python = settings.vllm_python or default_vllm_python()
    if not Path(python).exists():
        raise FileNotFoundError(
            f"no vLLM interpreter at {python}: run `make venv-vllm` (or set GENERATOR_VLLM_PYTHON, or "
            "attach to a running server with GENERATOR_VLLM_URL)"
        )
    port = settings.vllm_port or free_port()
    process = ServiceProcess(
        "vllm",
        vllm_command(settings, port, on_gpu),
        log_dir / f"vllm-{port}.log",
        env=vllm_env(settings),
        health_url=f"http://127.0.0.1:{port}/health",
    )
    process.start()
    return process, f"http://127.0.0.1:{port}"


def log_dir_for(settings: GeneratorSettings) -> Path:
    """Where the child's log goes (GENERATOR_VLLM_LOG_DIR, else the temp dir)."""
    return Path(settings.vllm_log_dir or Path(tempfile.gettempdir()) / "raftflow-vllm")
