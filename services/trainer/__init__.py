"""Trainer worker: Celery jobs for SFT / RAFT fine-tuning and reward-model training.

``python -m services.trainer`` (or ``celery -A services.trainer worker``) runs it; see docs/trainer.md.
"""

from services.trainer.app import app

__all__ = ["app"]
