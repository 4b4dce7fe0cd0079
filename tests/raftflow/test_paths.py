"""Client paths cannot escape the configured roots, by '..' or by symlink."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.paths import PathNotAllowed, confine, is_hub_id, resolve_inside


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
