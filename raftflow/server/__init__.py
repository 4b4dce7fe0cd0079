"""FastAPI plumbing every raftflow service shares, one module per job: the app skeleton (``app``),
bearer-token auth (``auth``), Prometheus exposition (``prometheus``), request counts and latency
(``request_telemetry``), request size and time limits (``limits``, ``protocol``), run-time 422s
(``errors``), flags to settings (``entry``), serving with uvicorn (``run``) and free-port lookup
(``ports``). Routes stay in each service; only the plumbing lives here.

Names: *telemetry* is what Prometheus scrapes (every service's ``telemetry`` module); *metrics* are the
numbers a run records per iteration and a job per step (``raftflow.iteration_stats`` computes a run's);
``/metrics`` keeps Prometheus' conventional path."""

from raftflow.server.auth import bearer_auth
from raftflow.server.errors import limit_error
from raftflow.server.limits import add_request_limits
from raftflow.server.ports import free_port
from raftflow.server.prometheus import metrics_endpoint
from raftflow.server.protocol import head_timeout_protocol
from raftflow.server.run import serve, uvicorn_options

__all__ = [
    "add_request_limits",
    "bearer_auth",
    "free_port",
    "head_timeout_protocol",
    "limit_error",
    "metrics_endpoint",
    "serve",
    "uvicorn_options",
]
