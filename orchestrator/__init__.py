"""The RAFT orchestrator: runs alignment iterations over the generator, rewarder and trainer."""
