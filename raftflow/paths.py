"""Confine client-supplied paths (checkpoints, datasets) to configured roots.

A path a client sends may contain ``..`` or pass through a symlink that points elsewhere; both are
resolved first (``Path.resolve`` follows symlinks), then the result must lie inside one of the roots.
Hub ids (``owner/name``) are not paths: :func:`confine` lets them through where the caller's field
accepts one (a model), and only when no local file of that name exists.
"""

from __future__ import annotations

import os
import re
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


# owner/name, as the hub spells repo ids; a value of this shape may still be a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(value: str) -> bool:
    """True when ``value`` names a hub repo, to be downloaded, rather than a file on this machine.

    ``owner/name`` is also a valid relative path, and ``from_pretrained`` loads a local directory of
    that name before it asks the hub, so an existing local entry (even a dangling symlink) is a path
    and stays subject to the roots. Absolute values and ``..``/``.`` segments are never hub ids (the
    hub forbids ``..`` in repo ids); the check reads the filesystem relative to the working directory,
    which is what the services resolve relative paths against too.
    """
    if os.path.isabs(value) or not _HUB_ID.match(value) or ".." in value:
        return False
    if any(part in ("", ".") for part in value.split("/")):
        return False
    return not os.path.lexists(value)


def confine(value: str, roots: Sequence[str | Path], *, hub_ids: bool = False) -> str:
    """``value`` as a service should use it, or :class:`PathNotAllowed`.

    No roots: ``value`` unchanged (unconfined, local use). With roots: a hub id unchanged when
    ``hub_ids`` (the model is downloaded into the hub cache, not read from a client-chosen path), else
    the fully resolved path, which must lie inside a root. Callers use the resolved path from then
    on, so a symlink swapped in after the check cannot redirect the read or write.
    """
    if not roots:
        return value
    if hub_ids and is_hub_id(value):
        return value
    return str(resolve_inside(value, roots))
