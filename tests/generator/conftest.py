"""Generator test helpers: real generator processes shared across tests, and a second checkpoint.

Starting a generator (python + torch import + model load) costs seconds on 2 cores, so the suite
shares one session-wide server (``generator``) for everything that does not change its state, and
starts dedicated ones only for hot reload and the TGI backend.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from raftflow.processes import ServiceProcess
from tests.processes import start_service

TOKEN = "generator-test-token"

# The shared server's limits: small, so the limit tests are cheap, and a token budget that a
# 32 x 8 request overflows, so multi-call batching is exercised.
LIMITS = {"max_n": 16, "max_tokens": 64, "max_prompts": 32, "token_budget": 2048}
MAX_BODY_BYTES = 64 * 1024


@dataclass
class Generator:
    """A running generator: its process, URL and the headers that pass its auth."""

    process: ServiceProcess
    url: str
    token: str | None = TOKEN
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post(self, path: str, body: dict, timeout: float = 60.0) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers, timeout=timeout)

    def complete(self, **body: object) -> dict:
        response = self.post("/v1/completions", body)
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, name: str, **labels: str) -> float:
        """Current value of one sample on /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0


def start_generator(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> Generator:
    process, url = start_service(
        "services.generator",
        *args,
        log_dir=log_dir,
        name="generator",
        env={"RAFTFLOW_API_TOKEN": TOKEN, **(env or {})},
        timeout=120,
    )
    return Generator(process=process, url=url)


def limit_flags(**overrides: int) -> list[str]:
    values = {**LIMITS, **overrides}
    return [arg for key, value in values.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(scope="session")
def generator(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generator]:
    """The shared server: tiny policy, bearer token on, small limits (body size included). Tests must
    not reload it."""
    server = start_generator(
        tmp_path_factory.mktemp("generator-logs"),
        "--model",
        str(tiny_models["policy"]),
        *limit_flags(),
        env={"RAFTFLOW_MAX_BODY_BYTES": str(MAX_BODY_BYTES)},
    )
    yield server
    server.process.stop()


def perturbed_checkpoint(source: Path, target: Path, seed: int = 1, scale: float = 0.5) -> Path:
    """A copy of ``source`` with noise added to every weight: same tokenizer and shapes, different
    outputs, different checkpoint_version. Written beside ``target`` and renamed into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(staging)
    staging.rename(target)
    return target
