"""k8s/: every rendered manifest valid per the Kubernetes schemas, and consistent with the code.

Validators (no cluster needed):
- ``kubernetes-validate``, which ships the Kubernetes OpenAPI-derived JSON schemas; strict mode, so
  an unknown or misspelt field fails too. Run against the oldest and newest version it ships;
- the kustomize tree rendered by deploylib.render_kustomization, compared with ``kubectl kustomize``
  when kubectl is installed;
- the cross-checks in crosscheck.py against the services' settings classes and apps.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from tests.deploy import crosscheck as cc
from tests.deploy import deploylib as lib

VERSIONS = [all_versions()[0], all_versions()[-1]]
ENTRYPOINTS = [str(p.relative_to(lib.REPO)) for p in lib.K8S_ENTRYPOINTS]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return lib.by_kind(objects, kind)[name]


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_manifests_validate_against_kubernetes_schemas(rendered, entrypoint: str, version: str) -> None:
    errors = []
    for obj in rendered[entrypoint]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(
                f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )
    assert errors == []


def test_the_validator_rejects_a_misspelt_field(rendered) -> None:
    deployment = copy.deepcopy(find(rendered["k8s/base"], "Deployment", "generator"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_secret_example_validates_and_stays_out_of_the_kustomizations(rendered) -> None:
    secret = yaml.safe_load(lib.SECRET_EXAMPLE.read_text())
    kubernetes_validate.validate(secret, VERSIONS[-1], strict=True)
    for objects in rendered.values():
        assert "Secret" not in {o["kind"] for o in objects}  # never overwrite the real one on apply


def test_every_manifest_is_rendered_or_an_example(rendered) -> None:
    """No YAML under k8s/ escapes validation by being left out of every kustomization."""
    seen: set[Path] = set()

    def walk(directory: Path) -> None:
        for name in ("kustomization.yaml",):
            seen.add(directory / name)
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text()).get("resources", []):
            path = (directory / entry).resolve()
            walk(path) if path.is_dir() else seen.add(path)

    for entrypoint in lib.K8S_ENTRYPOINTS:
        walk(entrypoint)
    manifests = {p.resolve() for p in lib.K8S_DIR.rglob("*.yaml")}
    examples = {p.resolve() for p in (lib.K8S_DIR / "examples").glob("*.yaml")}
    assert manifests - examples - {p.resolve() for p in seen} == set()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: renderer not compared")
@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_renderer_matches_kubectl_kustomize(rendered, entrypoint: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(lib.REPO / entrypoint)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    theirs = [doc for doc in yaml.safe_load_all(out) if doc]

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(theirs, key=key) == sorted(rendered[entrypoint], key=key)


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nimages:\n  - name: raftflow/generator\n")
    with pytest.raises(lib.UnsupportedKustomization, match="images"):
        lib.render_kustomization(tmp_path)


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_cross_checks_pass(rendered, entrypoint: str) -> None:
    assert cc.k8s_problems(rendered[entrypoint]) == []


def test_every_raftflow_image_is_a_dockerfile_target(rendered) -> None:
    images = {
        c["image"]
        for w in lib.workloads(rendered["k8s/base"])
        for c in w["spec"]["template"]["spec"]["containers"]
    }
    targets = {lib.raftflow_target(image) for image in images} - {None}
    assert targets == set(cc.service_targets())


# ---- negative: the cross-checks catch what a typo would break -------------------------------------


def problems_after(rendered, edit, entrypoint: str = "k8s/base") -> list[str]:
    objects = copy.deepcopy(rendered[entrypoint])
    edit(objects)
    return cc.k8s_problems(objects)


def test_a_wrong_env_var_name_in_a_configmap_is_caught(rendered) -> None:
    def rename(objects):
        data = find(objects, "ConfigMap", "rewarder-config")["data"]
        data["REWARDER_MAX_BATCH"] = data.pop("REWARDER_MAX_BATCH_SIZE")

    problems = problems_after(rendered, rename)
    assert any("REWARDER_MAX_BATCH is not read by RewarderSettings" in p for p in problems), problems


def test_service_links_clashing_with_a_setting_are_caught(rendered) -> None:
    def enable(objects):
        find(objects, "Deployment", "generator")["spec"]["template"]["spec"].pop("enableServiceLinks")

    problems = problems_after(rendered, enable)
    assert any("enableServiceLinks would inject ['GENERATOR_PORT']" in p for p in problems), problems


def test_a_probe_on_a_missing_route_is_caught(rendered) -> None:
    def typo(objects):
        container(objects, "orchestrator")["livenessProbe"]["httpGet"]["path"] = "/healthz"

    problems = problems_after(rendered, typo)
    assert any("livenessProbe: /healthz is not a GET route of the orchestrator app" in p for p in problems)


def test_a_container_port_that_is_not_the_service_port_is_caught(rendered) -> None:
    def move(objects):
        container(objects, "generator")["ports"][0]["containerPort"] = 8080

    problems = problems_after(rendered, move)
    assert any("containerPort http is not the service's port 8001" in p for p in problems), problems


def test_a_short_startup_window_is_caught(rendered) -> None:
    def shorten(objects):
        container(objects, "rewarder")["startupProbe"]["failureThreshold"] = 6

    problems = problems_after(rendered, shorten)
    assert any("startupProbe allows 60s, too short to load a model" in p for p in problems), problems


def test_a_missing_gpu_limit_is_caught(rendered) -> None:
    problems = problems_after(
        rendered, lambda o: container(o, "trainer")["resources"]["limits"].pop("nvidia.com/gpu")
    )
    assert any("needs nvidia.com/gpu: 1 in limits" in p for p in problems), problems


def test_a_network_policy_that_cuts_the_orchestrator_off_is_caught(rendered) -> None:
    def block(objects):
        rule = find(objects, "NetworkPolicy", "redis-ingress")["spec"]["ingress"][0]
        rule["from"] = [
            p for p in rule["from"] if p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] != "trainer"
        ]

    problems = problems_after(rendered, block)
    assert any("NetworkPolicy blocks trainer -> redis:6379" in p for p in problems), problems


def test_an_undocumented_secret_key_is_caught(rendered) -> None:
    def rename(objects):
        env = container(objects, "orchestrator")["env"][0]
        env["valueFrom"]["secretKeyRef"]["key"] = "db-url"

    problems = problems_after(rendered, rename)
    assert any("DATABASE_URL refers to a Secret key that is not documented" in p for p in problems), problems


# ---- behaviour the issue asks for -------------------------------------------------------------------


def test_shared_storage_is_one_read_write_many_claim(rendered) -> None:
    objects = rendered["k8s/base"]
    (claim,) = lib.by_kind(objects, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("generator", "rewarder", "trainer", "orchestrator"):
        volumes = find(objects, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in volumes


def test_token_is_mounted_as_a_file_for_the_http_services(rendered) -> None:
    objects = rendered["k8s/base"]
    for name in ("generator", "rewarder", "orchestrator"):
        model = cc.service_model(name)
        env, _ = lib.container_env(container(objects, name), objects, cc.secret_example()[1])
        token_file = env[model.env_name("api_token_file")]
        mounts = [m["mountPath"] for m in container(objects, name)["volumeMounts"]]
        assert any(token_file.startswith(m + "/") for m in mounts), (name, token_file)


def test_keda_example_scales_the_trainer_on_its_queue(rendered) -> None:
    from raftflow.celery_config import QUEUE

    scaled = yaml.safe_load(lib.KEDA_EXAMPLE.read_text())
    objects = rendered["k8s/base"]
    assert scaled["kind"] == "ScaledObject" and scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "trainer"
    assert "nvidia.com/gpu" in container(objects, "trainer")["resources"]["limits"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUE
    host, _, port = trigger["metadata"]["address"].partition(":")
    redis_service = find(objects, "Service", host.split(".")[0])
    assert int(port) in [p["port"] for p in redis_service["spec"]["ports"]]
    trainer_redis = find(objects, "ConfigMap", "trainer-config")["data"]["REDIS_URL"]
    assert trainer_redis.rsplit("/", 1)[1] == trigger["metadata"]["databaseIndex"]


def test_vllm_example_runs_vllm_beside_the_generator_on_the_gpu(rendered) -> None:
    """k8s/examples/generator-vllm.example.yaml replaces the base generator Deployment with one whose
    pod holds a vLLM sidecar: schema-valid, the generator's settings select it, the GPU is vLLM's."""
    deployment = yaml.safe_load((lib.K8S_DIR / "examples" / "generator-vllm.example.yaml").read_text())
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    assert deployment["metadata"]["name"] == "generator"
    generator, vllm = deployment["spec"]["template"]["spec"]["containers"]
    objects = rendered["k8s/base"]
    env, problems = lib.container_env(generator, objects, {})
    assert problems == []
    model = cc.service_model("generator")
    settings = lib.load_settings(model.settings_cls, {**model.image.env, **env})
    assert settings.backend == "vllm"
    host, port = lib.url_host_port(settings.vllm_url)
    assert host == "127.0.0.1" and port == int(vllm["args"][vllm["args"].index("--port") + 1])
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in generator["resources"]["limits"]
    assert {e["name"]: e["value"] for e in vllm["env"]}["VLLM_SERVER_DEV_MODE"] == "1"
    data = {m["mountPath"] for c in (generator, vllm) for m in c["volumeMounts"] if m["name"] == "data"}
    assert data == {"/data"}


def test_unconfined_path_roots_are_caught(rendered) -> None:
    def unset(objects):
        del find(objects, "ConfigMap", "orchestrator-config")["data"]["ORCHESTRATOR_PATH_ROOTS"]

    problems = problems_after(rendered, unset)
    assert any("ORCHESTRATOR_PATH_ROOTS is not set" in p for p in problems), problems


def test_generator_replicas_example_gives_the_orchestrator_each_replica(rendered) -> None:
    """k8s/examples/generator-replicas.example.yaml: a StatefulSet of the base generator pod behind a
    headless Service, and GENERATOR_URLS naming each pod, as many as there are replicas."""
    path = lib.K8S_DIR / "examples" / "generator-replicas.example.yaml"
    headless, statefulset, config = yaml.safe_load_all(path.read_text())
    for obj in (headless, statefulset, config):
        kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
    base = rendered["k8s/base"]
    assert statefulset["spec"]["template"] == find(base, "Deployment", "generator")["spec"]["template"]
    assert headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items()

    base_config = find(base, "ConfigMap", "orchestrator-config")["data"]
    assert {k: v for k, v in config["data"].items() if k != "GENERATOR_URLS"} == base_config
    model = cc.service_model("orchestrator")
    settings = lib.load_settings(model.settings_cls, {**model.image.env, **config["data"]})
    replicas = statefulset["spec"]["replicas"]
    assert len(settings.generator_urls) == replicas >= 2
    (port,) = headless["spec"]["ports"]
    name, service = statefulset["metadata"]["name"], headless["metadata"]["name"]
    for index, url in enumerate(settings.generator_urls):
        assert lib.url_host_port(url) == (f"{name}-{index}.{service}", port["port"])
