"""FastAPI plumbing every raftflow service shares, one module per job: bearer-token auth (``auth``),
Prometheus exposition (``metrics``), request size and time limits (``limits``, ``protocol``), run-time
422s (``errors``), serving with uvicorn (``run``) and free-port lookup (``ports``). Routes stay in each
service; only the plumbing lives here. The names below are the ones services import."""

from raftflow.server.auth import bearer_auth
from raftflow.server.errors import limit_error
from raftflow.server.limits import add_request_limits
from raftflow.server.metrics import metrics_endpoint
from raftflow.server.ports import free_port
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
