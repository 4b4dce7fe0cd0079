"""One module per resource: /score, /get_reward (OpenRLHF), /info, /health. /metrics is wired in the
service skeleton (raftflow.server.app)."""
