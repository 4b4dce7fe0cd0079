"""The layering the code must keep (docs/architecture.md), checked on every import statement of the
source tree, function-local imports included:

    raftflow_cli                      entry points: the `raftflow` command, demo, local stack
    services.*, orchestrator          the services and the orchestrator
    raftflow                          the library they share

Nothing imports upward, and services never import each other or the orchestrator: they talk HTTP and
the queue only, so each one can be deployed, scaled and replaced on its own.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.processes import REPO_ROOT

LAYERS = {"raftflow": 0, "services": 1, "orchestrator": 1, "raftflow_cli": 2}


def unit_of(module: str) -> str | None:
    """``services.generator`` for anything under it, else the top-level package; None outside ours."""
    parts = module.split(".")
    if parts[0] not in LAYERS:
        return None
    return ".".join(parts[:2]) if parts[0] == "services" and len(parts) > 1 else parts[0]


def import_graph() -> dict[str, set[str]]:
    """{importing unit: units it imports}, over every .py file of our packages."""
    graph: dict[str, set[str]] = defaultdict(set)
    for package in LAYERS:
        for path in (REPO_ROOT / package).rglob("*.py"):
            source = unit_of(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    target = unit_of(name)
                    if target is not None and target != source:
                        graph[source].add(target)
    return graph


def test_nothing_imports_upward_and_services_never_import_each_other() -> None:
    graph = import_graph()
    assert graph, "no imports found: the layout changed under this test"
    upward = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if LAYERS[target.split(".")[0]] > LAYERS[source.split(".")[0]]
    ]
    sideways = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if LAYERS[target.split(".")[0]] == LAYERS[source.split(".")[0]] == 1
    ]
    assert upward == [], "imports that run up the layers"
    assert sideways == [], "services or the orchestrator importing each other"


def test_the_shared_library_holds_no_application_code() -> None:
    """What only the `raftflow` command uses lives in raftflow_cli, not in the shared package."""
    graph = import_graph()
    assert "raftflow" in graph["raftflow_cli"]
    for gone in ("cli", "demo", "tiny_models.py", "embedded_redis.py", "pretrained.py"):
        assert not (REPO_ROOT / "raftflow" / gone).exists(), gone
