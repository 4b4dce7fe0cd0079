"""Client paths cannot escape the configured roots, by '..' or by symlink."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.paths import PathNotAllowed, resolve_inside


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
