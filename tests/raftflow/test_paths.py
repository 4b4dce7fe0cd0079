"""Client paths cannot escape the configured roots, by '..' or by symlink."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raftflow.paths import (
    ADAPTER_CONFIG,
    MAX_ADAPTER_CHAIN,
    PathNotAllowed,
    confine,
    confine_adapter_base,
    is_hub_id,
    resolve_inside,
)


def test_paths_inside_roots_resolve(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "policy").mkdir(parents=True)
    assert resolve_inside(root / "policy", [root]) == (root / "policy").resolve()
    assert resolve_inside(str(root / "a" / ".." / "policy"), [tmp_path / "other", root]).name == "policy"
    assert resolve_inside("/anything", []) == Path("/anything")


def test_dotdot_and_symlink_escapes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        resolve_inside(root / ".." / "secret", [root])
    (root / "link").symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        resolve_inside(root / "link", [root])
    with pytest.raises(PathNotAllowed):
        resolve_inside("/etc/passwd", [root])


def test_hub_ids_are_only_values_that_are_not_local_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_hub_id("openai-community/gpt2") and is_hub_id("owner/name.v1")
    for not_an_id in ("gpt2", "/abs/path", "a/..", "../a", "a/./b", "a//b", "a/b/c", "./a"):
        assert not is_hub_id(not_an_id), not_an_id
    (tmp_path / "models" / "policy").mkdir(parents=True)
    assert not is_hub_id("models/policy")  # exists here: from_pretrained would read it from disk
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "dangling").symlink_to(tmp_path / "nowhere")
    assert not is_hub_id("owner/dangling")


def test_confine_keeps_hub_ids_only_where_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    (root / "policy").mkdir(parents=True)
    assert confine("../anything", []) == "../anything"  # no roots: unchanged
    assert confine("owner/name", [root], hub_ids=True) == "owner/name"
    with pytest.raises(PathNotAllowed):
        confine("owner/name", [root])  # a data path: the hub exception does not apply
    assert confine("data/policy", [root], hub_ids=True) == str((root / "policy").resolve())
    with pytest.raises(PathNotAllowed):
        confine("data/../data/../escape", [root], hub_ids=True)


def adapter(directory: Path, base: object) -> Path:
    directory.mkdir(parents=True)
    (directory / ADAPTER_CONFIG).write_text(json.dumps({"base_model_name_or_path": base}))
    return directory


def test_an_adapters_base_passes_the_rule_of_the_field_that_named_the_adapter(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "policy").mkdir(parents=True)
    (outside / "policy").mkdir(parents=True)
    roots = [root]
    confine_adapter_base(root / "policy", roots, hub_ids=False)  # not an adapter
    confine_adapter_base(adapter(root / "inside", str(root / "policy")), roots, hub_ids=False)
    confine_adapter_base(adapter(root / "hub", "owner/name"), roots, hub_ids=True)
    confine_adapter_base(adapter(root / "out", str(outside / "policy")), [], hub_ids=False)  # unconfined
    refused = {
        "outside the allowed roots": adapter(root / "out-2", str(outside / "policy")),
        "is a hub id": root / "hub",
        "is no directory inside the allowed roots": adapter(root / "gone", str(root / "missing")),
        "names no base_model_name_or_path": adapter(root / "none", None),
        "makes the adapters' chain a cycle": adapter(root / "self", str(root / "self")),
    }
    (root / "chain-0").mkdir()  # chain-N: N adapters, each the base of the next, on chain-0's model
    for index in range(1, MAX_ADAPTER_CHAIN + 2):
        adapter(root / f"chain-{index}", str(root / f"chain-{index - 1}"))
    confine_adapter_base(root / f"chain-{MAX_ADAPTER_CHAIN}", roots, hub_ids=False)
    refused["more than"] = root / f"chain-{MAX_ADAPTER_CHAIN + 1}"
    (root / "not-json").mkdir()
    (root / "not-json" / ADAPTER_CONFIG).write_text("{nope")
    refused["does not load"] = root / "not-json"
    for reason, path in refused.items():
        with pytest.raises(PathNotAllowed, match=re.escape(reason)):
            confine_adapter_base(path, roots, hub_ids=False)
    # Down the chain: an adapter inside whose base is an adapter with an outside base.
    with pytest.raises(PathNotAllowed, match="out-2/adapter_config.json"):
        confine_adapter_base(adapter(root / "outer", str(root / "out-2")), roots, hub_ids=False)
    # adapter_config.json itself symlinked out: refused before it is read, whether its target exists.
    (outside / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(root / "policy")})
    )
    for name, target in (("linked", outside / "adapter_config.json"), ("dangling", outside / "nothing")):
        (root / name).mkdir()
        (root / name / ADAPTER_CONFIG).symlink_to(target)
        with pytest.raises(PathNotAllowed, match=r"adapter_config.json leads outside the allowed roots"):
            confine_adapter_base(root / name, roots, hub_ids=True)
