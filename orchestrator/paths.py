"""Confine the local paths of a run body to ``ORCHESTRATOR_PATH_ROOTS``.

The orchestrator reads the prompt files itself and hands the policy path to the generator and the
trainer, which read it with their own permissions: a body naming ``../../secrets`` or a symlink out of
the data volume would make the stack read (and, through samples and checkpoints, leak) any file the
services can. So every path field is resolved (``..``, symlinks) and must land inside a root before
anything is read. Hub ids stay allowed for the policy: they are downloaded into the hub cache, not read
from a path the client chose.
"""

from __future__ import annotations

import logging

from orchestrator.settings import OrchestratorSettings
from raftflow.paths import PathNotAllowed, confine, confine_adapter_base
from raftflow.schemas.runs import RunRequest
from raftflow.server import limit_error

log = logging.getLogger(__name__)

# Every field of RunRequest that names a file or directory, and whether a hub id may stand in for it.
# tests/reliability/test_path_roots.py fails when RunRequest gains a str field missing here.
PATH_FIELDS: dict[str, bool] = {
    "policy": True,
    "prompts": False,
    "eval_prompts": False,
    "eval_pairs": False,
    "sft_mix_data": False,
}


def confine_run(body: RunRequest, settings: OrchestratorSettings) -> RunRequest:
    """``body`` with its paths resolved inside the allowed roots (unchanged when none are set).

    Raises a 422 naming the first field that escapes and the setting, so a client can tell a typo from
    a policy decision. The resolved paths replace the given ones: the run, the generator and the
    trainer then use exactly the file that was checked.
    """
    roots = settings.allowed_roots()
    if not roots:
        return body
    updates: dict[str, str] = {}
    for field, hub_ids in PATH_FIELDS.items():
        value = getattr(body, field)
        if value is None:
            continue
        try:
            updates[field] = confine(value, roots, hub_ids=hub_ids)
            if field == "policy":  # the services load a LoRA adapter's base with it: the same rule
                confine_adapter_base(updates[field], roots, hub_ids=hub_ids)
        except PathNotAllowed as exc:
            raise limit_error(field, f"{exc} (setting ORCHESTRATOR_PATH_ROOTS)", value) from exc
    return body.model_copy(update=updates)


def warn_if_unconfined(settings: OrchestratorSettings) -> None:
    """One start-up warning when run paths are not confined: fine on a laptop, not on a shared box."""
    if not settings.path_roots:
        log.warning(
            "ORCHESTRATOR_PATH_ROOTS is not set: POST /iterations accepts any local path the process "
            "can read (policy, prompts, eval_prompts). Set it to the data directories when the API is "
            "reachable by anyone but you."
        )
