"""The dashboard: a small ASGI app over :mod:`fleetlog.query`, and its notebook views.

``fleetlog ui`` serves it (``fleetlog up`` starts it with the stack); the page is a
static front end (uPlot charts, built by ``make ui`` from ``web/``) that reads JSON
from ``/api/...``. Bound to 127.0.0.1 by default; any other address needs a token.
"""

from __future__ import annotations

from fleetlog.ui.app import create_app
from fleetlog.ui.server import serve

__all__ = ["create_app", "serve"]
