"""raftflow: RAFT (Reward rAnked FineTuning) as a service stack.

This package is the one place for code that more than one service needs: API schemas, settings,
model loading, data formats, HTTP clients and the selection/metrics maths. It must stay importable
without torch being imported (the trainer worker imports torch only inside a job, after the fork).
"""

__version__ = "0.1.0"
