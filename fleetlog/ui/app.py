"""The dashboard's ASGI app: the JSON API, the built front end, and a token check.

With a token configured every request must carry it: an ``Authorization: Bearer``
header, the ``fleetlog_token`` cookie, or ``?token=`` once in the address (the page
then sets the cookie, so links and API calls need nothing more). Without a token the
app may only be bound to a loopback address; :func:`fleetlog.ui.server.serve`
refuses anything else.

Around the token check, :class:`BrowserGuard` refuses requests from other sites' pages
and DNS-rebinding names (see :mod:`fleetlog._browser`), and :class:`SecurityHeaders`
gives every response (errors and 401s included) ``nosniff``, a strict
Content-Security-Policy (the front end is one script and one stylesheet from
``/static``, nothing inline) and no framing.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetlog._browser import HostPolicy, refusal
from fleetlog.config import Settings
from fleetlog.ui.api import routes

__all__ = ["DIST", "SECURITY_HEADERS", "WEB", "create_app"]

WEB = Path(__file__).with_name("web")
DIST = WEB / "dist"
COOKIE = "fleetlog_token"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_NOT_BUILT = """<!doctype html><title>fleetlog</title><body>
<h1>fleetlog dashboard</h1><p>The front end is not built yet: run <code>make ui</code>
(npm install + esbuild) in the fleetlog checkout, then reload.</p>"""


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every response; a route's own CSP (artifacts') wins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_secured)


class BrowserGuard:
    """ASGI middleware: refuse (403) DNS-rebinding hosts and requests other sites' pages make.

    A link from elsewhere may still open the dashboard's page (a navigation); the API and
    everything else answer only the dashboard's own pages and non-browser clients.
    """

    def __init__(self, app: ASGIApp, hosts: HostPolicy) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        page = request.method in ("GET", "HEAD") and not request.url.path.startswith("/api/")
        hosts = request.headers.getlist("host")
        reason = "more than one Host header" if len(hosts) > 1 else None
        reason = reason or refusal(request.headers, self.hosts, own_origin_ok=True, navigation_ok=page)
        if reason is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"error": reason}, 403)(scope, receive, send)


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
            path = "/" + target.path.lstrip("/")  # never "//host": that would redirect off-site
            response: Response = RedirectResponse(path + (f"?{target.query}" if target.query else ""))
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
    """The dashboard for ``settings``' store; ``token`` (default ``settings.ui.token``) gates it."""
    settings = settings or Settings.from_env()
    token = settings.ui.token if token is None else token
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BrowserGuard, hosts=HostPolicy.for_bind(settings.ui.host)),
        *([Middleware(TokenGate, token=token)] if token else []),
    ]
    app = Starlette(
        routes=[
            *routes(settings),
            Route("/", _index),
            Mount("/static", app=StaticFiles(directory=DIST, check_dir=False), name="static"),
        ],
        middleware=middleware,
        exception_handlers={500: _server_error},
    )
    app.state.settings = settings
    return app


def _server_error(request: Request, exc: Exception) -> Response:
    """A crash's 500 is sent outside every middleware: it carries the security headers itself."""
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, 500, headers=SECURITY_HEADERS)
