"""The dashboard's ASGI app: the JSON API, the built front end, and a token check.

With a token configured every request must carry it: an ``Authorization: Bearer``
header, the ``fleetlog_token`` cookie, or ``?token=`` once in the address (the page
then sets the cookie, so links and API calls need nothing more). Without a token the
app may only be bound to a loopback address; :func:`fleetlog.ui.server.serve`
refuses anything else.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetlog.config import Settings
from fleetlog.ui.api import routes

__all__ = ["DIST", "WEB", "create_app"]

WEB = Path(__file__).with_name("web")
DIST = WEB / "dist"
COOKIE = "fleetlog_token"

_NOT_BUILT = """<!doctype html><title>fleetlog</title><body style="font-family:sans-serif">
<h1>fleetlog dashboard</h1><p>The front end is not built yet: run <code>make ui</code>
(npm install + esbuild) in the fleetlog checkout, then reload.</p>"""


class TokenGate:
    """ASGI middleware: refuse requests that do not carry the token (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        given = request.query_params.get("token")
        if self._ok(given):  # first visit with ?token=: keep it in a cookie, drop it from the address
            target = request.url.remove_query_params("token")
            response: Response = RedirectResponse(str(target.path) + (f"?{target.query}" if target.query else ""))
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        elif self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        else:
            response = JSONResponse({"error": "this dashboard needs its token: open it with ?token=..."}, 401)
        await response(scope, receive, send)


def _index(request: Request) -> Response:
    page = WEB / "index.html"
    if not (DIST / "app.js").is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503)
    return HTMLResponse(page.read_text(), headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None, *, token: str | None = None) -> Starlette:
    """The dashboard for ``settings``' store; ``token`` (default ``settings.ui_token``) gates it."""
    settings = settings or Settings.from_env()
    token = settings.ui_token if token is None else token
    app = Starlette(
        routes=[
            *routes(settings),
            Route("/", _index),
            Mount("/static", app=StaticFiles(directory=DIST, check_dir=False), name="static"),
        ]
    )
    app.state.settings = settings
    if token:
        app.add_middleware(TokenGate, token=token)
    return app
