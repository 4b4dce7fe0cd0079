"""Trainer worker: Celery jobs for SFT / RAFT fine-tuning and reward-model training.

``python -m services.trainer`` (or ``celery -A services.trainer.app worker``) runs it; see
docs/trainer.md. Importing the package builds nothing: the Celery app lives in
:mod:`services.trainer.app`, and clients that only need the settings import
:mod:`services.trainer.settings` without creating it.
"""
