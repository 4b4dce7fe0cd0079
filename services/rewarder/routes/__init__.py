"""One module per resource: /score, /get_reward (OpenRLHF), /info, /health. /metrics is wired in the
app factory from :func:`raftflow.server.metrics_endpoint`."""
