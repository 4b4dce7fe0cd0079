"""The end-to-end demo: SFT -> reward model -> RAFT through the real services, offline, on a CPU.

``raftflow demo`` builds tiny models and a task from the fortunes corpus ("positive fortunes": continue
the first words of a fortune; the GOLD reward is VADER sentiment, the PROXY reward is a small reward
model trained on gold-labelled pairs), starts the stack as local processes, runs the pipeline through
the services' APIs, and writes a report. ``raftflow up`` starts the same stack and leaves it running.

Modules, one job each: :mod:`config` (profiles and levers), :mod:`data` (the task's datasets),
:mod:`stack` (processes, ports, token, shutdown), :mod:`pipeline` (the three stages),
:mod:`evaluation` (sampling and scoring every checkpoint, perplexity), :mod:`report` (table, plot,
JSON, verdict).
"""
