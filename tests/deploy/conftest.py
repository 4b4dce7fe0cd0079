"""Fixtures for the deployment tests: each file is loaded once per session; tests that break a copy
on purpose take ``copy.deepcopy`` of it first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import deploylib as lib


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    return lib.load_compose_raw()


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any]) -> dict[str, Any]:
    """Interpolated as with a .env copied from .env.example."""
    return lib.interpolate(compose_raw, lib.compose_env_defaults())


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return lib.parse_env_file(lib.ENV_EXAMPLE)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each kustomize entry point (k8s/base, k8s/overlays/...) rendered: {name: objects}."""
    return {str(path.relative_to(lib.REPO)): lib.render_kustomization(path) for path in lib.K8S_ENTRYPOINTS}


@pytest.fixture(scope="session")
def stages() -> list[lib.Stage]:
    return lib.parse_dockerfile(lib.DOCKERFILE.read_text())
