"""docker-compose.yml: valid per the Compose Specification, and consistent with the code.

Validators (no Docker engine needed):
- the Compose Specification JSON schema as vendored by ``check-jsonschema`` (its
  ``builtin_schemas/vendor/compose-spec.json``, taken from the compose-spec project);
- the ``compose-spec`` package: Rust bindings of the ``compose_spec`` crate, a typed parser that also
  checks values (image references, durations, port syntax) the schema leaves as plain strings;
- the cross-checks in crosscheck.py against the services' settings classes and apps.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy import crosscheck as cc
from tests.deploy import deploylib as lib


def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(resource.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "secrets", "networks"} <= set(schema["properties"])


def test_compose_file_matches_the_compose_schema(
    compose_raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert schema_errors(compose_raw) == []  # as written, ${VAR} strings included
    assert schema_errors(compose) == []  # as Compose sees it after interpolation


def test_schema_rejects_a_misspelt_key(compose_raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose_raw)
    broken["services"]["generator"]["healthcheck"]["start_perod"] = "15m"
    assert any("start_perod" in error for error in schema_errors(broken))


def test_compose_spec_parser_accepts_the_interpolated_file(compose: dict[str, Any]) -> None:
    from compose_spec import PyCompose

    parsed = PyCompose.from_yaml(yaml.safe_dump(compose))
    assert set(parsed.service_names()) == set(compose["services"])
    generator = parsed.get_service("generator")
    (device,) = generator.deploy.resources.reservations.devices
    assert device.driver == "nvidia" and device.capabilities == {"gpu"}


def test_compose_spec_parser_rejects_a_bad_image_reference(compose: dict[str, Any]) -> None:
    from compose_spec import PyCompose

    broken = copy.deepcopy(compose)
    broken["services"]["generator"]["image"] = "raftflow/generator:not a tag"
    with pytest.raises(ValueError, match="image"):
        PyCompose.from_yaml(yaml.safe_dump(broken))


def test_cross_checks_pass(
    compose: dict[str, Any], compose_raw: dict[str, Any], env_example: dict[str, str]
) -> None:
    assert cc.compose_problems(compose, compose_raw, env_example) == []


def test_every_raftflow_service_is_a_dockerfile_target(compose: dict[str, Any]) -> None:
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets == set(cc.service_targets())


# ---- negative: the cross-checks catch what a typo would break -------------------------------------


def problems_after(
    compose: dict[str, Any], compose_raw: dict[str, Any], env_example: dict[str, str], edit
) -> list[str]:
    broken = copy.deepcopy(compose)
    edit(broken)
    return cc.compose_problems(broken, compose_raw, env_example)


def test_a_wrong_env_var_name_is_caught(compose, compose_raw, env_example) -> None:
    def rename(doc: dict[str, Any]) -> None:
        env = doc["services"]["generator"]["environment"]
        env["GENERATOR_MODEL_ID"] = env.pop("GENERATOR_MODEL")

    problems = problems_after(compose, compose_raw, env_example, rename)
    assert any(
        "GENERATOR_MODEL_ID is not read by GeneratorSettings (did you mean GENERATOR_MODEL?)" in p
        for p in problems
    ), problems


def test_a_wrong_port_in_a_service_url_is_caught(compose, compose_raw, env_example) -> None:
    def wrong_port(doc: dict[str, Any]) -> None:
        doc["services"]["orchestrator"]["environment"]["REWARDER_URL"] = "http://rewarder:8001"

    problems = problems_after(compose, compose_raw, env_example, wrong_port)
    assert any("REWARDER_URL=http://rewarder:8001: rewarder listens on 8002" in p for p in problems), problems


def test_a_port_override_without_matching_url_is_caught(compose, compose_raw, env_example) -> None:
    def move(doc: dict[str, Any]) -> None:
        doc["services"]["generator"]["environment"]["GENERATOR_PORT"] = "9001"

    problems = problems_after(compose, compose_raw, env_example, move)
    assert any("GENERATOR_URL=http://generator:8001: generator listens on 9001" in p for p in problems), (
        problems
    )


def test_a_health_path_that_is_no_route_is_caught(compose, compose_raw, env_example) -> None:
    def typo(doc: dict[str, Any]) -> None:
        test = doc["services"]["rewarder"]["healthcheck"]["test"]
        test[-1] = test[-1].replace("/health", "/healthz")

    problems = problems_after(compose, compose_raw, env_example, typo)
    assert any("/healthz is not a GET route of the services.rewarder app" in p for p in problems), problems


def test_a_missing_bind_address_is_caught(compose, compose_raw, env_example) -> None:
    problems = problems_after(
        compose,
        compose_raw,
        env_example,
        lambda d: d["services"]["orchestrator"]["environment"].pop("ORCHESTRATOR_HOST"),
    )
    assert any("ORCHESTRATOR_HOST must be set to 0.0.0.0 explicitly" in p for p in problems), problems


def test_an_inline_token_is_caught(compose, compose_raw, env_example) -> None:
    def inline(doc: dict[str, Any]) -> None:
        doc["services"]["generator"]["environment"]["RAFTFLOW_API_TOKEN"] = "abc"

    problems = problems_after(compose, compose_raw, env_example, inline)
    assert any("API token is set inline" in p for p in problems), problems


def test_a_service_off_the_redis_network_is_caught(compose, compose_raw, env_example) -> None:
    problems = problems_after(
        compose, compose_raw, env_example, lambda d: d["services"]["trainer"].pop("networks")
    )
    assert any("trainer and redis share no network" in p for p in problems), problems


def test_an_undocumented_variable_is_caught(compose_raw, env_example) -> None:
    broken_raw = copy.deepcopy(compose_raw)
    broken_raw["services"]["rewarder"]["environment"]["REWARDER_MAX_ITEMS"] = "${REWARDER_MAX_ITEMS:-1024}"
    problems = cc.compose_problems(
        lib.interpolate(broken_raw, lib.compose_env_defaults()), broken_raw, env_example
    )
    assert ".env.example: REWARDER_MAX_ITEMS is used by docker-compose.yml but not documented" in problems


# ---- behaviour the issue asks for -------------------------------------------------------------------


def test_the_database_password_must_be_set(compose_raw: dict[str, Any], env_example: dict[str, str]) -> None:
    assert env_example["POSTGRES_PASSWORD"] == ""  # shipped empty on purpose
    with pytest.raises(lib.MissingVariable, match="POSTGRES_PASSWORD"):
        lib.interpolate(compose_raw, env_example)


def test_defaults_are_the_seed_models(compose: dict[str, Any]) -> None:
    assert (
        compose["services"]["generator"]["environment"]["GENERATOR_MODEL"] == "openlm-research/open_llama_3b"
    )
    assert (
        compose["services"]["rewarder"]["environment"]["REWARDER_MODEL"]
        == "weqweasdas/hh_rlhf_rm_open_llama_3b"
    )


def test_gpu_ids_are_configurable_to_split_services(compose_raw: dict[str, Any]) -> None:
    env = lib.compose_env_defaults() | {
        "DEPLOY_GENERATOR_GPU": "0",
        "DEPLOY_REWARDER_GPU": "1",
        "DEPLOY_TRAINER_GPU": "2",
    }
    split = lib.interpolate(compose_raw, env)

    def ids(name: str) -> list[str]:
        return split["services"][name]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]

    assert (ids("generator"), ids("rewarder"), ids("trainer")) == (["0"], ["1"], ["2"])


def test_trainer_runs_one_job_at_a_time(compose: dict[str, Any]) -> None:
    model = cc.service_model("trainer")
    settings = lib.load_settings(
        model.settings_cls, {**model.image.env, **lib.service_environment(compose["services"]["trainer"])}
    )
    assert settings.concurrency == 1


def test_tgi_profile_wires_the_generator_backend(compose_raw: dict[str, Any]) -> None:
    env = lib.compose_env_defaults() | {"COMPOSE_PROFILES": "tgi", "GENERATOR_BACKEND": "tgi"}
    doc = lib.interpolate(compose_raw, env)
    tgi, generator = doc["services"]["tgi"], doc["services"]["generator"]
    assert tgi["profiles"] == ["tgi"] and tgi["image"].startswith(
        "ghcr.io/huggingface/text-generation-inference:"
    )
    assert generator["depends_on"]["tgi"] == {"condition": "service_healthy", "required": False}
    model = cc.service_model("generator")
    settings = lib.load_settings(
        model.settings_cls, {**model.image.env, **lib.service_environment(generator)}
    )
    assert settings.backend == "tgi"
    assert lib.url_host_port(settings.tgi_url)[0] == "tgi"
    assert cc.compose_problems(doc, compose_raw, lib.parse_env_file(lib.ENV_EXAMPLE)) == []


def test_vllm_profile_wires_the_generator_engine(compose_raw: dict[str, Any]) -> None:
    env = lib.compose_env_defaults() | {"COMPOSE_PROFILES": "vllm", "GENERATOR_BACKEND": "vllm"}
    doc = lib.interpolate(compose_raw, env)
    vllm, generator = doc["services"]["vllm"], doc["services"]["generator"]
    assert vllm["profiles"] == ["vllm"] and vllm["image"].startswith("vllm/vllm-openai:")
    # hot reload needs the dev endpoints; checkpoints are read by the paths the orchestrator sends
    assert vllm["environment"]["VLLM_SERVER_DEV_MODE"] == "1"
    assert "raftflow-data:/data:ro" in vllm["volumes"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    command = vllm["command"]
    assert command[command.index("--served-model-name") + 1] == "base"
    assert command[command.index("--logprobs-mode") + 1] == "processed_logprobs"
    assert generator["depends_on"]["vllm"] == {"condition": "service_healthy", "required": False}
    model = cc.service_model("generator")
    settings = lib.load_settings(
        model.settings_cls, {**model.image.env, **lib.service_environment(generator)}
    )
    assert settings.backend == "vllm"
    assert lib.url_host_port(settings.vllm_url) == ("vllm", 8000)
    assert cc.compose_problems(doc, compose_raw, lib.parse_env_file(lib.ENV_EXAMPLE)) == []


def test_orchestrator_uses_the_compose_postgres(compose: dict[str, Any]) -> None:
    model = cc.service_model("orchestrator")
    env = {**model.image.env, **lib.service_environment(compose["services"]["orchestrator"])}
    url = lib.load_settings(model.settings_cls, env).resolved_database_url()
    assert url.startswith("postgresql+psycopg://") and lib.url_host_port(url) == ("postgres", 5432)
    assert "pg_isready" in cc.healthcheck_command(compose["services"]["postgres"]["healthcheck"]["test"])
    assert compose["services"]["orchestrator"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_unconfined_or_misplaced_path_roots_are_caught(compose, compose_raw, env_example) -> None:
    def unset(doc: dict[str, Any]) -> None:
        del doc["services"]["trainer"]["environment"]["TRAINER_PATH_ROOTS"]
        doc["services"]["orchestrator"]["environment"]["ORCHESTRATOR_PATH_ROOTS"] = '["/srv/elsewhere"]'

    problems = problems_after(compose, compose_raw, env_example, unset)
    assert any("trainer: TRAINER_PATH_ROOTS is not set" in p for p in problems), problems
    assert any("ORCHESTRATOR_PATH_ROOTS entry /srv/elsewhere is not on the shared" in p for p in problems)
