"""docker/Dockerfile and .dockerignore: what each image runs, exposes and checks matches the code.

No Docker engine needed (tests/containers/ builds the images): the file is parsed (continuations,
stages, ENV/USER/EXPOSE/HEALTHCHECK/ENTRYPOINT inheritance) and checked against the services' settings
and apps.
hadolint (a real Dockerfile parser and linter) runs in test_security_scan.py when installed.
"""

from __future__ import annotations

import copy
import importlib.util

from tests.deploy import crosscheck as cc
from tests.deploy import deploylib as lib


def test_cross_checks_pass(stages) -> None:
    assert cc.dockerfile_problems(stages, lib.DOCKERIGNORE.read_text()) == []


def test_one_target_per_component() -> None:
    targets = cc.service_targets()
    assert targets == ["generator", "rewarder", "trainer", "orchestrator"]
    for target in targets:
        package = cc.service_model(target).package
        assert importlib.util.find_spec(f"{package}.__main__") is not None, package


def test_gpu_images_get_cuda_torch_and_the_orchestrator_cpu_torch(stages) -> None:
    by_name = {s.name: s for s in stages}

    def copies_from(target: str) -> set[str]:
        chain, name = [], target
        while name in by_name:
            chain.append(by_name[name])
            name = by_name[name].base
        return {a.split("--from=")[1].split()[0] for s in chain for k, a in s.instructions if "--from=" in a}

    for target in ("generator", "rewarder", "trainer"):
        assert copies_from(target) == {"build-gpu"}
        assert cc.service_model(target).wants_gpu
    assert copies_from("orchestrator") == {"build-cpu"}
    assert not cc.service_model("orchestrator").wants_gpu
    cpu_args = dict(a.split("=", 1) for k, a in by_name["build-cpu"].instructions if k == "ARG" and "=" in a)
    assert cpu_args["TORCH_CPU_INDEX_URL"].endswith("/whl/cpu")
    gpu_runs = " ".join(a for k, a in by_name["build-gpu"].instructions if k == "RUN")
    assert "torch==${TORCH_VERSION}" in gpu_runs and "/cpu" not in gpu_runs


def test_torch_version_is_the_project_pin(stages) -> None:
    import tomllib

    pin = next(
        d
        for d in tomllib.loads((lib.REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("torch")
    )
    for stage in (s for s in stages if s.name.startswith("build-")):
        args = dict(a.split("=", 1) for k, a in stage.instructions if k == "ARG" and "=" in a)
        assert pin == f"torch=={args['TORCH_VERSION']}", stage.name


# ---- negative --------------------------------------------------------------------------------------


def edited(stages, target: str, keyword: str, replace) -> list[lib.Stage]:
    broken = copy.deepcopy(stages)
    stage = next(s for s in broken if s.name == target)
    stage.instructions = [(k, replace(a) if k == keyword else a) for k, a in stage.instructions]
    return broken


def test_a_root_user_is_caught(stages) -> None:
    broken = edited(stages, "orchestrator", "USER", lambda _: "root")
    problems = cc.dockerfile_problems(broken, lib.DOCKERIGNORE.read_text())
    assert "Dockerfile target orchestrator: USER 'root' is not a numeric non-root uid" in problems


def test_a_healthcheck_on_a_missing_route_is_caught(stages) -> None:
    broken = edited(stages, "generator", "HEALTHCHECK", lambda a: a.replace("/health", "/ready"))
    problems = cc.dockerfile_problems(broken, lib.DOCKERIGNORE.read_text())
    assert any("/ready is not a GET route of the services.generator app" in p for p in problems), problems


def test_an_expose_that_is_not_the_port_is_caught(stages) -> None:
    broken = edited(stages, "rewarder", "EXPOSE", lambda _: "8080")
    problems = cc.dockerfile_problems(broken, lib.DOCKERIGNORE.read_text())
    assert "Dockerfile target rewarder: EXPOSE [8080], the service listens on 8002" in problems


def test_a_baked_in_secret_is_caught(stages) -> None:
    broken = edited(stages, "orchestrator", "ENV", lambda a: a + " RAFTFLOW_API_TOKEN=letmein")
    problems = cc.dockerfile_problems(broken, lib.DOCKERIGNORE.read_text())
    assert "Dockerfile orchestrator: ENV RAFTFLOW_API_TOKEN bakes a secret in" in problems


def test_a_build_context_missing_a_copied_folder_is_caught(stages) -> None:
    dockerignore = lib.DOCKERIGNORE.read_text().replace("!services/\n", "")
    problems = cc.dockerfile_problems(stages, dockerignore)
    assert "Dockerfile build-gpu: COPY services is excluded by .dockerignore" in problems
