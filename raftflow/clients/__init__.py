"""Clients for the raftflow services, used by the orchestrator, the CLI, the demo and the benchmarks."""
