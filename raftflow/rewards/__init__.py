"""Rule-based reward functions for the rewarder's ``--function module:function`` source.

Every function follows one protocol: ``fn(items: list[RewardItem]) -> list[float]``, one finite float
per item, same order (see :class:`raftflow.schemas.reward.RewardItem` and docs/rewarder.md). Items come
in batches, so a function can vectorise; it runs in the rewarder's single scoring thread, so it need not
be thread-safe. Functions are named only in the service's settings, never by a request.
"""
