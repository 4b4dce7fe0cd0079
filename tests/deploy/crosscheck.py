"""Cross-checks between the deployment files and the code: ports, env var names, bind address, health
paths, token wiring, GPU requests, shared storage and who can reach whom.

Each ``*_problems`` function takes already-loaded documents and returns a list of problems, so the
tests can run it on the real files (expecting none) and on deliberately broken copies.
"""

from __future__ import annotations

import difflib
import importlib
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from tests.deploy import deploylib as lib

MODEL_LOAD_MIN_SECONDS = 600  # a model service must get at least 10 minutes to download and load


@dataclass(frozen=True)
class ServiceModel:
    """What the code says about one Dockerfile target."""

    target: str
    package: str
    settings_cls: type
    image: lib.ImageConfig

    @property
    def env_names(self) -> dict[str, str]:
        return lib.field_env_names(self.settings_cls)

    @property
    def loads_model(self) -> bool:
        return "model" in self.settings_cls.model_fields

    @property
    def wants_gpu(self) -> bool:
        return "NVIDIA_DRIVER_CAPABILITIES" in self.image.env

    def env_name(self, field_name: str) -> str:
        return lib.env_name_of(self.settings_cls, field_name)


@cache
def dockerfile_stages() -> tuple[lib.Stage, ...]:
    return tuple(lib.parse_dockerfile(lib.DOCKERFILE.read_text()))


@cache
def service_model(target: str) -> ServiceModel:
    image = lib.image_config(list(dockerfile_stages()), target)
    package = lib.entry_package(image)
    return ServiceModel(target, package, lib.settings_class(package), image)


def service_targets() -> list[str]:
    """Dockerfile stages that are runnable services (an ENTRYPOINT of their own)."""
    return [s.name for s in dockerfile_stages() if any(k == "ENTRYPOINT" for k, _ in s.instructions)]


_STATUS: dict[tuple[str, str], int | None] = {}


def health_status(model: ServiceModel, settings: Any, path: str) -> int | None:
    """``GET path`` without a token on the service's app (None: no HTTP app). Cached per target and
    path: whether a route exists and is open does not depend on the settings values."""
    key = (model.target, path)
    if key not in _STATUS:
        _STATUS[key] = lib.get_without_token(model.package, settings, path)
    return _STATUS[key]


def has_http_app(model: ServiceModel) -> bool:
    return lib.app_factory(model.package) is not None


def route_problem(model: ServiceModel, settings: Any, path: str) -> str | None:
    status = health_status(model, settings, path)
    if status in (404, 405):
        return f"{path} is not a GET route of the {model.package} app"
    if status in (401, 403):
        return f"{path} needs the API token, so a probe cannot call it"
    return None


def check_settings(
    where: str,
    model: ServiceModel,
    declared: dict[str, str],
    problems: list[str],
    extra: dict[str, str] | None = None,
) -> Any | None:
    """Every declared name is read by the service; the image env plus the declared env (plus
    ``extra``, not name-checked) validates. Returns the settings the process would get."""
    valid = model.env_names
    for name in declared:
        if name.upper() not in valid and name not in lib.FOREIGN_ENV:
            close = difflib.get_close_matches(name.upper(), list(valid) + list(lib.FOREIGN_ENV), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{where}: {name} is not read by {model.settings_cls.__name__}{hint}")
    try:
        return lib.load_settings(model.settings_cls, {**model.image.env, **declared, **(extra or {})})
    except ValidationError as exc:
        problems.append(f"{where}: settings do not validate: {lib.settings_errors(exc)}")
        return None


def health_url_problems(
    where: str, model: ServiceModel, settings: Any, command: str, env: dict[str, str]
) -> list[str]:
    """A health check command: the URL's path is an open GET route, its port is the service's."""
    problems = []
    match = re.search(r"https?://[^/'\"\s]+?(?::(?P<port>%s|\d+))?(?P<path>/[^'\"\s]*)", command)
    if not match:
        return [f"{where}: health check {command!r} calls no http URL"]
    problem = route_problem(model, settings, match["path"])
    if problem:
        problems.append(f"{where}: health check: {problem}")
    port = match["port"]
    if port == "%s":
        names = re.findall(r"os\.environ(?:\.get)?\[?\(?'([A-Z0-9_]+)'", command)
        if names != [model.env_name("port")]:
            problems.append(f"{where}: health check reads {names}, expected [{model.env_name('port')}]")
        elif env.get(names[0]) != str(settings.port):
            problems.append(
                f"{where}: {names[0]} is {env.get(names[0])!r}, the service listens on {settings.port}"
            )
    elif port is not None and int(port) != settings.port:
        problems.append(f"{where}: health check port {port}, the service listens on {settings.port}")
    return problems


def celery_probe_problems(where: str, command: str) -> list[str]:
    """A worker probe names a Celery app module that exists and pings over the broker."""
    match = re.search(r"--app[ =](\S+)", command)
    if not match or "inspect ping" not in command:
        return [f"{where}: worker probe {command!r} is not `celery --app MODULE inspect ping`"]
    try:
        app = importlib.import_module(match[1]).app
    except (ImportError, AttributeError) as exc:
        return [f"{where}: --app {match[1]} does not load a Celery app: {exc}"]
    if type(app).__name__ != "Celery":
        return [f"{where}: {match[1]}.app is a {type(app).__name__}, not a Celery app"]
    return []


def under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


def path_root_problems(where: str, model: ServiceModel, settings: Any, data_paths: list[str]) -> list[str]:
    """A service that reads client-chosen paths (it has a ``path_roots`` setting) must be confined in a
    deployment, to directories on the shared data volume."""
    if "path_roots" not in model.settings_cls.model_fields:
        return []
    env = model.env_name("path_roots")
    if not settings.path_roots:
        return [f"{where}: {env} is not set, so client paths are unconfined"]
    return [
        f"{where}: {env} entry {root} is not on the shared data volume"
        for root in settings.path_roots
        if not any(under(str(root), path) for path in data_paths)
    ]


# --------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_problems(stages: list[lib.Stage], dockerignore: str) -> list[str]:
    problems: list[str] = []
    secretish = re.compile(r"TOKEN|PASSWORD|SECRET|PASSWD|API_KEY", re.I)
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword in ("ENV", "ARG"):
                for token in re.split(r"\s+", args):
                    name = token.split("=", 1)[0]
                    if secretish.search(name) and not name.endswith("_FILE"):
                        problems.append(f"Dockerfile {stage.name}: {keyword} {name} bakes a secret in")
    for target in [s.name for s in stages if any(k == "ENTRYPOINT" for k, _ in s.instructions)]:
        where = f"Dockerfile target {target}"
        try:
            model = service_model(target)
        except (LookupError, ValueError, ModuleNotFoundError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        image = lib.image_config(stages, target)
        if image.user is None or image.user.split(":")[0] in ("root", "0") or not image.user[0].isdigit():
            problems.append(f"{where}: USER {image.user!r} is not a numeric non-root uid")
        if "HF_HUB_OFFLINE" in image.env:
            problems.append(f"{where}: HF_HUB_OFFLINE is set in the image; leave it to the deployment")
        # The image leaves the model to the deployment; supply one so the settings validate.
        placeholder = {model.env_name("model"): "placeholder/model"} if model.loads_model else {}
        settings = check_settings(where, model, image.env, problems, extra=placeholder)
        if settings is None:
            continue
        for var in ("ARTIFACTS_DIR", "HF_HOME"):
            if var in image.env and not any(under(image.env[var], v) for v in image.volumes):
                problems.append(f"{where}: {var}={image.env[var]} is not inside a VOLUME {image.volumes}")
        if image.healthcheck is None:
            problems.append(f"{where}: no HEALTHCHECK")
            continue
        command = " ".join(image.healthcheck["test"])
        start = lib.parse_duration(image.healthcheck["options"].get("start-period", "0s"))
        if model.loads_model and start < MODEL_LOAD_MIN_SECONDS:
            problems.append(f"{where}: HEALTHCHECK start period {start:.0f}s is too short to load a model")
        if not has_http_app(model):
            problems += celery_probe_problems(where, command)
            continue
        problems += health_url_problems(where, model, settings, command, image.env)
        if image.expose != [settings.port]:
            problems.append(f"{where}: EXPOSE {image.expose}, the service listens on {settings.port}")
        if image.env.get(model.env_name("host")) != "0.0.0.0":
            problems.append(f"{where}: {model.env_name('host')} is not 0.0.0.0 (unreachable from outside)")
    # The build context: an allowlist that lets in exactly what the COPY lines need.
    patterns = [p.strip() for p in dockerignore.splitlines() if p.strip() and not p.startswith("#")]
    if not patterns or patterns[0] != "*":
        problems.append(".dockerignore: must start with `*` (an allowlist keeps .env and secrets out)")
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword != "COPY" or "--from=" in args:
                continue
            for source in shlex.split(args)[:-1]:
                if source.startswith("--"):
                    continue
                # `${ARG:-default}`: the default must be in the context (the arg's value is a file
                # the build is told about, docker/wheels/ for TORCH_WHEEL).
                source = re.sub(r"^\$\{\w+:-(.+)\}$", r"\1", source)
                if source.rstrip("/") not in allowed:
                    problems.append(f"Dockerfile {stage.name}: COPY {source} is excluded by .dockerignore")
                elif not (lib.REPO / source).exists():
                    problems.append(f"Dockerfile {stage.name}: COPY {source}: no such path")
    for leaked in (".env", "secrets", ".venv", ".git", "models", "artifacts"):
        if leaked in allowed:
            problems.append(f".dockerignore lets {leaked} into the build context")
    return problems


# --------------------------------------------------------------------------------------------------
# Compose


def compose_service_model(name: str, service: dict[str, Any]) -> ServiceModel | None:
    target = (service.get("build") or {}).get("target")
    return service_model(target) if target else None


def healthcheck_command(test: Any) -> str:
    if isinstance(test, str):
        return test
    return " ".join(test[1:]) if test and test[0] in ("CMD", "CMD-SHELL") else " ".join(test)


def volume_mount(volume: str | dict[str, Any]) -> tuple[str, str]:
    """(source, container path) of a short (``src:dst[:mode]``) or long volume entry."""
    if isinstance(volume, dict):
        return volume["source"], volume["target"]
    source, _, rest = volume.partition(":")
    return source, rest.split(":")[0]


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    reservations = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    return reservations.get("devices", [])


def compose_networks(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks")
    if networks is None:
        return {"default"}
    return set(networks)


def compose_problems(compose: dict[str, Any], raw: dict[str, Any], env_example: dict[str, str]) -> list[str]:
    """``compose``: interpolated with .env.example; ``raw``: as written (for configurability checks)."""
    problems: list[str] = []
    services = compose["services"]
    settings_of: dict[str, Any] = {}
    models: dict[str, ServiceModel] = {}
    shared_mounts: dict[str, set[tuple[str, str]]] = {}

    for name, service in services.items():
        where = f"compose service {name}"
        if not service.get("restart") or service["restart"] == "no":
            problems.append(f"{where}: no restart policy")
        model = compose_service_model(name, service)
        if model is None:
            continue
        models[name] = model
        if lib.raftflow_target(service.get("image", "")) != model.target:
            problems.append(f"{where}: image {service.get('image')!r} is not raftflow/{model.target}")
        env = lib.service_environment(service)
        settings = check_settings(where, model, env, problems)
        if settings is None:
            continue
        settings_of[name] = settings
        effective = {**model.image.env, **env}

        # The bearer token: from a mounted secret file, never an inline value.
        if model.env_name("api_token") in env:
            problems.append(f"{where}: the API token is set inline; use {model.env_name('api_token_file')}")
        token_file = env.get(model.env_name("api_token_file"))
        if token_file is not None:
            mounted = {
                f"/run/secrets/{s if isinstance(s, str) else s['source']}" for s in service.get("secrets", [])
            }
            if token_file not in mounted:
                problems.append(
                    f"{where}: token file {token_file} is not a mounted secret ({sorted(mounted)})"
                )

        # Storage: the volumes mounted by the raftflow services.
        shared_mounts[name] = {volume_mount(volume) for volume in service.get("volumes", [])}

        # GPU reservation, with device ids configurable from .env.
        if model.wants_gpu:
            gpus = [d for d in gpu_devices(service) if d.get("driver") == "nvidia"]
            if not any("gpu" in d.get("capabilities", []) for d in gpus):
                problems.append(f"{where}: no nvidia GPU reservation")
            raw_ids = [str(i) for d in gpu_devices(raw["services"][name]) for i in d.get("device_ids", [])]
            if not any("${" in i for i in raw_ids):
                problems.append(f"{where}: GPU device_ids are not configurable from .env")

        # HTTP services: bind address, port, health path, published ports.
        health = service.get("healthcheck")
        if health is None:
            problems.append(f"{where}: no healthcheck")
            continue
        command = healthcheck_command(health["test"])
        start = lib.parse_duration(health.get("start_period", "0s"))
        if model.loads_model and start < MODEL_LOAD_MIN_SECONDS:
            problems.append(f"{where}: start_period {start:.0f}s is too short to download and load a model")
        if not has_http_app(model):
            problems += celery_probe_problems(where, command)
            continue
        problems += health_url_problems(where, model, settings, command, effective)
        if env.get(model.env_name("host")) != "0.0.0.0":
            problems.append(f"{where}: {model.env_name('host')} must be set to 0.0.0.0 explicitly")
        for port in service.get("ports", []):
            container_port = int(str(port).rsplit(":", 1)[-1].split("/")[0])
            if container_port != settings.port:
                problems.append(
                    f"{where}: publishes container port {container_port}, service on {settings.port}"
                )

    # One shared data volume, mounted at the same path everywhere; run outputs and the cache inside it.
    common = set.intersection(*shared_mounts.values()) if shared_mounts else set()
    if not common:
        problems.append(f"compose: no volume mounted at the same path in all of {sorted(shared_mounts)}")
    for name in settings_of:
        env = {**models[name].image.env, **lib.service_environment(services[name])}
        for var in ("ARTIFACTS_DIR", "HF_HOME"):
            if var in env and not any(under(env[var], target) for _, target in common):
                problems.append(f"compose service {name}: {var}={env[var]} is outside the shared volume")
        problems += path_root_problems(
            f"compose service {name}", models[name], settings_of[name], [target for _, target in common]
        )

    # URLs between services: the host is a service on a shared network, the port is the one it serves.
    for name, settings in settings_of.items():
        for field_name in models[name].settings_cls.model_fields:
            value = getattr(settings, field_name)
            if not field_name.endswith("url") or not isinstance(value, str):
                continue
            host, port = lib.url_host_port(value)
            where = f"compose service {name}: {models[name].env_name(field_name)}={value}"
            if host not in services:
                problems.append(f"{where}: no service {host!r}")
                continue
            if not compose_networks(services[name]) & compose_networks(services[host]):
                problems.append(f"{where}: {name} and {host} share no network")
            if host in settings_of and port != settings_of[host].port:
                problems.append(f"{where}: {host} listens on {settings_of[host].port}")

    # Start order: a healthy-condition dependency must have a health check.
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if dep not in services:
                problems.append(f"compose service {name}: depends on unknown service {dep}")
            elif spec.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(
                    f"compose service {name}: waits for {dep} to be healthy, which has no healthcheck"
                )

    # Redis keeps queued jobs across restarts.
    for name, service in services.items():
        command = service.get("command") or []
        if "redis" in service.get("image", "").split(":")[0].split("/")[-1]:
            if "--appendonly" not in command or command[command.index("--appendonly") + 1] != "yes":
                problems.append(f"compose service {name}: Redis without --appendonly yes")
            if not any(str(v).endswith(":/data") for v in service.get("volumes", [])):
                problems.append(f"compose service {name}: Redis /data is not on a volume")

    # .env.example documents exactly the variables the compose file uses.
    used = lib.referenced_variables(raw)
    for var in sorted(used - set(env_example)):
        problems.append(f".env.example: {var} is used by docker-compose.yml but not documented")
    for var in sorted(set(env_example) - used - lib.COMPOSE_OWN_ENV):
        problems.append(f".env.example: {var} is not used by docker-compose.yml")
    return problems


# --------------------------------------------------------------------------------------------------
# Kubernetes


def labels_match(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def pods_selected(objects: list[dict[str, Any]], selector: dict[str, str]) -> list[dict[str, Any]]:
    return [
        w
        for w in lib.workloads(objects)
        if labels_match(selector, w["spec"]["template"]["metadata"]["labels"])
    ]


def container_port(container: dict[str, Any], port: int | str) -> int | None:
    for item in container.get("ports", []):
        if port in (item.get("name"), item["containerPort"]):
            return item["containerPort"]
    return None


def ingress_allowed(
    objects: list[dict[str, Any]], source_labels: dict[str, str], target: dict[str, Any], port: int
) -> bool:
    """Would the NetworkPolicies let a pod with ``source_labels`` reach ``target``'s pods on ``port``?"""
    labels = target["spec"]["template"]["metadata"]["labels"]
    containers = target["spec"]["template"]["spec"]["containers"]
    policies = [
        p
        for p in lib.by_kind(objects, "NetworkPolicy").values()
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and labels_match(p["spec"]["podSelector"].get("matchLabels"), labels)
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            if peers and not any(
                "podSelector" in peer and labels_match(peer["podSelector"].get("matchLabels"), source_labels)
                for peer in peers
            ):
                continue
            ports = rule.get("ports")
            if not ports or any(any(container_port(c, p["port"]) == port for c in containers) for p in ports):
                return True
    return False


def secret_example() -> tuple[str, dict[str, str]]:
    import yaml

    secret = yaml.safe_load(lib.SECRET_EXAMPLE.read_text())
    return secret["metadata"]["name"], {k: str(v) for k, v in secret["stringData"].items()}


def k8s_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    services = lib.by_kind(objects, "Service")
    pvcs = lib.by_kind(objects, "PersistentVolumeClaim")
    secret_name, secret_values = secret_example()
    link_names = lib.service_link_names(services)
    data_mounts: dict[str, set[tuple[str, str]]] = {}
    settings_of: dict[str, tuple[ServiceModel, Any, dict[str, Any], dict[str, str]]] = {}

    for workload in lib.workloads(objects):
        name = f"{workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True:
            problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: service account token is mounted")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "secret" in volume:
                if volume["secret"]["secretName"] != secret_name:
                    problems.append(f"{name}: volume {volume['name']} uses unknown Secret")
                for item in volume["secret"].get("items", []):
                    if item["key"] not in secret_values:
                        problems.append(
                            f"{name}: Secret key {item['key']} is not in {lib.SECRET_EXAMPLE.name}"
                        )
            if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in pvcs:
                problems.append(f"{name}: volume {volume['name']} claims a PVC that does not exist")
        for container in pod["containers"]:
            where = f"{name} container {container['name']}"
            sc = container.get("securityContext", {})
            if (
                sc.get("allowPrivilegeEscalation") is not False
                or sc.get("readOnlyRootFilesystem") is not True
            ):
                problems.append(f"{where}: needs allowPrivilegeEscalation false and a read-only root")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities are not all dropped")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in resources.get(kind, {}):
                        problems.append(f"{where}: no {res} {kind}")
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"] != secret_name or ref["key"] not in secret_values):
                    problems.append(f"{where}: {item['name']} refers to a Secret key that is not documented")
            env, env_problems = lib.container_env(container, objects, secret_values)
            problems += [f"{where}: {p}" for p in env_problems]

            target = lib.raftflow_target(container["image"])
            if target is None:
                continue
            try:
                model = service_model(target)
            except LookupError:
                problems.append(f"{where}: image {container['image']} is not a Dockerfile target")
                continue
            settings = check_settings(where, model, env, problems)
            if settings is None:
                continue
            settings_of[workload["metadata"]["name"]] = (model, settings, container, workload)
            if "/tmp" not in mounts:  # Python's tempfile, torch and matplotlib caches need it
                problems.append(f"{where}: read-only root without a writable /tmp")
            effective = {**model.image.env, **env}
            if pod.get("enableServiceLinks") is not False:
                clash = sorted(link_names & set(model.env_names))
                if clash:
                    problems.append(
                        f"{where}: enableServiceLinks would inject {clash}, which the service reads"
                    )
            if model.env_name("api_token") in env:
                problems.append(f"{where}: the API token is set as a value; mount it as a file")
            token_file = env.get(model.env_name("api_token_file"))
            if token_file and not any(
                under(token_file, path) and "secret" in volumes.get(m["name"], {})
                for path, m in mounts.items()
            ):
                problems.append(f"{where}: token file {token_file} is not on a mounted Secret")
            for path, mount in mounts.items():
                claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim")
                if claim:
                    data_mounts.setdefault(workload["metadata"]["name"], set()).add(
                        (claim["claimName"], path)
                    )
            for var in ("ARTIFACTS_DIR", "HF_HOME"):
                if var in effective and not any(
                    under(effective[var], p) and "persistentVolumeClaim" in volumes.get(m["name"], {})
                    for p, m in mounts.items()
                ):
                    problems.append(f"{where}: {var}={effective[var]} is not on the shared volume")
            claimed = [p for p, m in mounts.items() if "persistentVolumeClaim" in volumes.get(m["name"], {})]
            problems += path_root_problems(where, model, settings, claimed)

            if model.wants_gpu:
                limits = resources.get("limits", {})
                if str(limits.get("nvidia.com/gpu")) != "1":
                    problems.append(f"{where}: needs nvidia.com/gpu: 1 in limits")
                requested = resources.get("requests", {}).get("nvidia.com/gpu")
                if requested is not None and str(requested) != str(limits.get("nvidia.com/gpu")):
                    problems.append(f"{where}: GPU requests differ from limits")
                shm = mounts.get("/dev/shm")
                if not shm or volumes.get(shm["name"], {}).get("emptyDir", {}).get("medium") != "Memory":
                    problems.append(f"{where}: /dev/shm is not a memory emptyDir")

            probes = {k: container.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
            if not has_http_app(model):  # a worker: exec probes
                for kind in ("readinessProbe", "livenessProbe"):
                    probe = probes[kind]
                    if not probe or "exec" not in probe:
                        problems.append(f"{where}: no exec {kind}")
                    else:
                        problems += celery_probe_problems(
                            f"{where} {kind}", " ".join(probe["exec"]["command"])
                        )
                continue
            if env.get(model.env_name("host")) != "0.0.0.0":
                problems.append(f"{where}: {model.env_name('host')} must be set to 0.0.0.0 explicitly")
            if container_port(container, "http") != settings.port:
                problems.append(f"{where}: containerPort http is not the service's port {settings.port}")
            for kind, probe in probes.items():
                if not probe or "httpGet" not in probe:
                    problems.append(f"{where}: no httpGet {kind}")
                    continue
                http = probe["httpGet"]
                problem = route_problem(model, settings, http["path"])
                if problem:
                    problems.append(f"{where}: {kind}: {problem}")
                if container_port(container, http["port"]) != settings.port:
                    problems.append(f"{where}: {kind} port {http['port']} is not the service's port")
            startup = probes["startupProbe"] or {}
            window = startup.get("initialDelaySeconds", 0) + startup.get("periodSeconds", 10) * startup.get(
                "failureThreshold", 3
            )
            if model.loads_model and window < MODEL_LOAD_MIN_SECONDS:
                problems.append(f"{where}: startupProbe allows {window}s, too short to load a model")
            if "database_url" in model.settings_cls.model_fields and (
                workload["spec"].get("replicas", 1) != 1
                or workload["spec"].get("strategy", {}).get("type") != "Recreate"
            ):
                problems.append(f"{where}: the run store's owner must be a single replica with Recreate")

    # Services in front of raftflow pods forward to the port the service listens on.
    for service in services.values():
        for workload in pods_selected(objects, service["spec"]["selector"]):
            entry = settings_of.get(workload["metadata"]["name"])
            if entry is None:
                continue
            model, settings, container, _ = entry
            for port in service["spec"]["ports"]:
                if container_port(container, port.get("targetPort", port["port"])) != settings.port:
                    problems.append(
                        f"Service {service['metadata']['name']}: port {port['port']} does not "
                        f"reach {model.target} on {settings.port}"
                    )

    # One RWX claim mounted at the same path by every raftflow workload.
    common = set.intersection(*data_mounts.values()) if data_mounts else set()
    if not common:
        problems.append(f"no PVC mounted at the same path in all of {sorted(data_mounts)}")
    for claim, _ in common:
        if "ReadWriteMany" not in pvcs[claim]["spec"].get("accessModes", []):
            problems.append(f"PVC {claim} is shared by several pods but not ReadWriteMany")

    # URLs from ConfigMaps point at a Service port that reaches the right pods, and policies allow it.
    for workload_name, (model, settings, _container, workload) in settings_of.items():
        source_labels = workload["spec"]["template"]["metadata"]["labels"]
        for field_name in model.settings_cls.model_fields:
            value = getattr(settings, field_name)
            if not field_name.endswith("url") or not isinstance(value, str):
                continue
            host, port = lib.url_host_port(value)
            where = f"{workload_name}: {model.env_name(field_name)}={value}"
            service = services.get(host.split(".")[0])
            if service is None:
                if value not in secret_values.values():  # a Secret may point outside the cluster
                    problems.append(f"{where}: no Service {host!r}")
                continue
            ports = [p for p in service["spec"]["ports"] if p["port"] == port]
            if not ports:
                problems.append(f"{where}: Service {host} has no port {port}")
                continue
            targets = pods_selected(objects, service["spec"]["selector"])
            if not targets:
                problems.append(f"{where}: Service {host} selects no pods")
            for target in targets:
                target_port = None
                for c in target["spec"]["template"]["spec"]["containers"]:
                    target_port = target_port or container_port(c, ports[0].get("targetPort", port))
                if target_port is None:
                    problems.append(f"{where}: Service {host} port {port} reaches no container port")
                elif not ingress_allowed(objects, source_labels, target, target_port):
                    problems.append(f"{where}: NetworkPolicy blocks {workload_name} -> {host}:{port}")

    # Redis keeps queued jobs across restarts.
    for workload in lib.workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["image"].split(":")[0].split("/")[-1] != "redis":
                continue
            args = container.get("args", []) + container.get("command", [])
            if "--appendonly" not in args or args[args.index("--appendonly") + 1] != "yes":
                problems.append(f"{workload['metadata']['name']}: Redis without --appendonly yes")
            claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
            if not any(
                m["name"] in claims and m["mountPath"] == "/data" for m in container.get("volumeMounts", [])
            ):
                problems.append(f"{workload['metadata']['name']}: Redis /data is not on a persistent volume")
    return problems
