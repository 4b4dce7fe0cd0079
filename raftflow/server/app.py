"""The one skeleton of raftflow's HTTP services (generator, rewarder, orchestrator).

Each service keeps its routes, its lifespan (what it loads) and its own error handlers; the rest is the
same everywhere and lives here: title and version, bearer-token auth on the protected routers (with
the 401 and the body errors documented in OpenAPI), ``GET /metrics`` on the service's own registry,
request counts and latency (outermost, so refusals by the limits count too), and the request size and
time limits, and the refusal of JSON values no field can mean (non-finite numbers, lone surrogates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry

import raftflow
from raftflow.schemas.errors import BODY_ERRORS, UNAUTHORIZED
from raftflow.server.auth import bearer_auth
from raftflow.server.errors import validation_error_response
from raftflow.server.json_body import JSONValuesCheck
from raftflow.server.limits import add_request_limits
from raftflow.server.prometheus import metrics_endpoint
from raftflow.server.request_telemetry import RequestTelemetry, RequestTelemetryMiddleware
from raftflow.settings import CommonSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    service: str,
    settings: CommonSettings,
    registry: CollectorRegistry,
    lifespan: Lifespan,
    public: Sequence[APIRouter] = (),
    protected: Sequence[APIRouter] = (),
) -> FastAPI:
    """A FastAPI app named ``raftflow <service>`` with ``public`` routers open and ``protected`` ones
    behind the settings' API token. ``settings.service_api_token()`` refuses a tokenless start unless
    RAFTFLOW_ALLOW_NO_AUTH turns auth off on purpose (raftflow.server.serve prints the refusal)."""
    app = FastAPI(title=f"raftflow {service}", version=raftflow.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.api_token = settings.service_api_token()  # also what open routes check (CallerHasToken)
    auth = [Depends(bearer_auth(app.state.api_token))]
    for router in public:
        app.include_router(router)
    for router in protected:
        app.include_router(router, dependencies=auth, responses={**UNAUTHORIZED, **BODY_ERRORS})
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"], include_in_schema=False)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_middleware(JSONValuesCheck)  # inside the limits: it reads a body they have bounded
    add_request_limits(app, settings)
    app.add_middleware(
        RequestTelemetryMiddleware,
        telemetry=RequestTelemetry(service, registry),
        routes=[route for router in (*public, *protected) for route in router.routes],
    )  # added last: outermost
    return app
