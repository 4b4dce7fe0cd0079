"""Confine client-supplied paths (checkpoints, datasets) to configured roots.

A path a client sends may contain ``..`` or pass through a symlink that points elsewhere; both are
resolved first (``Path.resolve`` follows symlinks), then the result must lie inside one of the roots.
Hub ids (``owner/name``) are not paths: :func:`confine` lets them through where the caller's field
accepts one (a model), and only when no local file of that name exists.
"""

from __future__ import annotations

import json
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


# A PEFT adapter directory names the model it applies to in this file and key; every loader
# (raftflow.modeling, peft) loads that base, so it is a path a client chose, like the adapter's own.
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_BASE_KEY = "base_model_name_or_path"
# An adapter's base may itself be an adapter (loaders follow the chain); a longer chain, or a cycle,
# is refused rather than followed.
MAX_ADAPTER_CHAIN = 8


def confine_adapter_base(path: str | Path, roots: Sequence[str | Path], *, hub_ids: bool) -> None:
    """Refuse (:class:`PathNotAllowed`) a LoRA adapter directory whose base model escapes ``roots``.

    ``path`` is the adapter as already confined by the caller. Its ``adapter_config.json`` names a base
    that every loader (raftflow.modeling, transformers' peft integration) loads without asking, so that
    base passes the same rule as the field that named the adapter: inside ``roots`` after resolving
    ``..`` and symlinks (``adapter_config.json`` itself too), or a hub id where ``hub_ids`` (the
    caller's field accepts hub ids). A local base must also exist as a directory, else
    ``from_pretrained`` would take its name for a hub id and download it. A base that is itself an
    adapter is checked the same way, down the chain. No roots: nothing is checked (local use); a
    directory without ``adapter_config.json`` is not an adapter and passes.
    """
    if not roots:
        return
    current = Path(path)
    seen = {current.resolve()}
    for depth in range(MAX_ADAPTER_CHAIN + 1):
        config = current / ADAPTER_CONFIG
        if not os.path.lexists(config):
            return
        where = f"{current}/{ADAPTER_CONFIG}"
        try:  # before it is opened: the answer must not depend on what a symlink points at
            resolve_inside(config, roots)
        except PathNotAllowed:
            raise PathNotAllowed(f"{where} leads outside the allowed roots (a symlink)") from None
        if not config.is_file():
            return
        if depth == MAX_ADAPTER_CHAIN:
            break
        try:
            settings = json.loads(config.read_text())
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            settings = exc
        if not isinstance(settings, dict):
            reason = f"does not load ({settings})" if isinstance(settings, Exception) else "is no JSON object"
            raise PathNotAllowed(
                f"{where} {reason}: the adapter's base model cannot be checked against the allowed roots"
            )
        base = settings.get(ADAPTER_BASE_KEY)
        if not isinstance(base, str) or not base:
            raise PathNotAllowed(f"{where} names no {ADAPTER_BASE_KEY}: the adapter cannot be loaded alone")
        if is_hub_id(base):
            if hub_ids:
                return  # downloaded into the hub cache; what it holds is the hub's, not a path
            raise PathNotAllowed(
                f"{where}: {ADAPTER_BASE_KEY} {base!r} is a hub id, and hub ids are refused here while "
                "roots are set (nothing was downloaded)"
            )
        try:
            resolved = resolve_inside(base, roots)
        except PathNotAllowed as exc:
            raise PathNotAllowed(f"{where}: {ADAPTER_BASE_KEY} {exc}") from None
        if not resolved.is_dir():
            raise PathNotAllowed(
                f"{where}: {ADAPTER_BASE_KEY} {base!r} is no directory inside the allowed roots"
                + ("" if hub_ids else ", and hub ids are refused here")
            )
        if resolved in seen:
            raise PathNotAllowed(f"{where}: {ADAPTER_BASE_KEY} {base!r} makes the adapters' chain a cycle")
        seen.add(resolved)
        current = resolved
    raise PathNotAllowed(
        f"{path}: more than {MAX_ADAPTER_CHAIN} adapters, each the base of the one before: refusing the chain"
    )


def confine_checkpoint_files(directory: str | Path, roots: Sequence[str | Path]) -> None:
    """Every entry of ``directory`` and of its real subdirectories (what transformers and safetensors
    read: the top level, ``additional_chat_templates/``) must resolve inside the directory or a root,
    and so must what ``tokenizer_config.json`` names as a file. The refusal never depends on whether
    the outside target exists. Raises :class:`PathNotAllowed`; no roots: nothing to check."""
    if not roots:
        return
    directory = Path(directory)
    if not directory.is_dir():
        return  # a hub id, or a path that does not exist: the caller's own checks answer for it
    allowed = [directory.resolve(), *roots]
    entries = list(directory.iterdir())
    entries += [e for d in entries if d.is_dir() and not d.is_symlink() for e in d.iterdir()]
    for entry in entries:
        try:
            resolve_inside(entry, allowed)
        except PathNotAllowed:
            raise PathNotAllowed(
                f"{entry} leads outside the checkpoint directory and the allowed roots (a symlink): "
                "refusing to read it"
            ) from None
    tokenizer_config = directory / "tokenizer_config.json"
    try:
        settings = json.loads(tokenizer_config.read_text()) if tokenizer_config.is_file() else {}
    except (OSError, ValueError):
        return  # the tokenizer's own load reports it
    if not isinstance(settings, dict):
        return
    for key, value in settings.items():
        if not key.endswith("_file") or not isinstance(value, str):
            continue
        try:  # transformers opens such a value as given (relative to the working directory)
            resolve_inside(value, allowed)
        except PathNotAllowed:
            raise PathNotAllowed(
                f"{tokenizer_config}: {key} {value!r} leads outside the checkpoint directory and the "
                "allowed roots: refusing to read it"
            ) from None


def confine_model_dir(path: str | Path, roots: Sequence[str | Path], *, hub_ids: bool) -> None:
    """What loading the model directory ``path`` (already confined) reads must stay inside ``roots``
    too: an adapter's base (:func:`confine_adapter_base`) and the files the directory leads to
    (:func:`confine_checkpoint_files`). Raises :class:`PathNotAllowed`."""
    confine_adapter_base(path, roots, hub_ids=hub_ids)
    confine_checkpoint_files(path, roots)
