"""Where and how a job trains: device, precision and thread count, decided once per job from the
shared settings (``RAFTFLOW_DEVICE``, ``RAFTFLOW_TORCH_THREADS``)."""

from __future__ import annotations

import gc
import warnings
from dataclasses import dataclass

import torch

from raftflow.modeling import default_dtype, resolve_device, set_torch_threads
from services.trainer.settings import TrainerSettings


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool  # mixed precision: fp32 master weights, bf16 matmuls (GPUs that support it)
    trust_remote_code: bool

    @property
    def use_cpu(self) -> bool:
        return self.device.type == "cpu"


def prepare_runtime(settings: TrainerSettings) -> Runtime:
    # transformers' token counter (include_num_input_tokens_seen) re-wraps a tensor on every step;
    # torch's advice about it is noise in every job log.
    warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
    set_torch_threads(settings.torch_threads)
    device = resolve_device(settings.device)
    return Runtime(
        device=device,
        bf16=default_dtype(device) == torch.bfloat16,
        trust_remote_code=settings.trust_remote_code,
    )


def release_device_memory(runtime: Runtime) -> None:
    """Hand a finished (or failed) job's GPU memory back: a worker child runs many jobs, and torch's
    caching allocator would otherwise keep the last model's blocks reserved, out of reach of the
    generator or rewarder sharing the card. On CPU the allocator reuses freed memory by itself."""
    if runtime.device.type == "cuda":
        gc.collect()  # the model may sit in a reference cycle (Trainer <-> callbacks)
        torch.cuda.empty_cache()
