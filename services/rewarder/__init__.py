"""The rewarder: scores text with a reward model or a rule-based function over HTTP.

``python -m services.rewarder --model PATH_OR_ID`` (or ``--function module:function``). Concurrent
requests are coalesced into batches for one scoring thread; see docs/rewarder.md.
"""
