"""Confine client-supplied paths (checkpoints, datasets) to configured roots.

A path a client sends may contain ``..`` or pass through a symlink that points elsewhere; both are
resolved first (``Path.resolve`` follows symlinks), then the result must lie inside one of the roots.
Hub ids (``owner/name``) are not paths and are checked by the caller's policy, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class PathNotAllowed(ValueError):
    """The path resolves outside every allowed root."""


def resolve_inside(path: str | Path, roots: Sequence[str | Path]) -> Path:
    """The resolved path, if it lies inside one of ``roots`` (no roots configured: any path)."""
    resolved = Path(path).expanduser().resolve()
    if not roots:
        return resolved
    for root in roots:
        if resolved.is_relative_to(Path(root).expanduser().resolve()):
            return resolved
    allowed = ", ".join(str(Path(r).resolve()) for r in roots)
    raise PathNotAllowed(f"{path} resolves to {resolved}, outside the allowed roots ({allowed})")
