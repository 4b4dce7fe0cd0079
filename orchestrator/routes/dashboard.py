"""``/dashboard/``: the orchestrator's web dashboard, static files served by the orchestrator itself.

The page holds no data: its script reads the API (``/iterations``, ``/iterations/{id}/samples/...``)
with the bearer token the user enters, so the files themselves are public like ``/health``. A strict
Content-Security-Policy keeps the page to its own origin (no CDN, no inline script, no framing): model
output shown in the samples browser can never load or run anything.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"
DASHBOARD_PATH = "/dashboard"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new release's app.js is picked up at once
}


class DashboardFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    app.mount(DASHBOARD_PATH, DashboardFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
