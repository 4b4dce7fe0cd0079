"""Warm each fresh worker child: import the training stack in the background while it waits for a job.

A new child (at start-up, after a crash, or when ``TRAINER_MAX_TASKS_PER_CHILD`` recycles one) would
otherwise spend seconds importing torch and transformers after its first job arrives. The import
happens after the fork, in the child, and touches no CUDA, so the rule that CUDA is first initialised
in the process that uses it still holds. A thread, because Celery kills a child whose start-up takes
longer than ``worker_proc_alive_timeout`` (4 s). A job that arrives mid-import waits for the thread to finish
(:func:`wait_for_preload`) rather than importing the same modules concurrently from two threads.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_process_init

from services.trainer.settings import trainer_settings

log = logging.getLogger(__name__)
_finished = threading.Event()
_finished.set()  # nothing to wait for unless a preload starts in this process


@worker_process_init.connect
def preload_training_stack(**_: object) -> None:
    if trainer_settings().preload:
        _finished.clear()
        threading.Thread(target=_import_training_stack, name="preload", daemon=True).start()


def wait_for_preload() -> None:
    """Block until a preload running in this process is done (returns at once when there is none)."""
    _finished.wait()


def _import_training_stack() -> None:
    try:
        import services.trainer.reward  # noqa: F401  (torch, transformers)
        import services.trainer.sft  # noqa: F401
    except Exception:  # the job imports them again and reports the error properly
        log.exception("preloading the training modules failed")
    finally:
        _finished.set()
