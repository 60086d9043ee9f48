"""Which requests a browser may make to fleetlog's local servers: CSRF and DNS rebinding.

fleetlog's HTTP servers (the embedded store's ClickHouse endpoint, the dashboard) usually
listen on loopback of a machine where a browser also runs. Any web page can make that
browser send requests to them; two checks keep such pages out:

* ``Host`` must name the address the server is bound to. A DNS-rebinding page reaches
  ``127.0.0.1`` through a name it controls (``evil.example``), and the browser then sends
  ``Host: evil.example``. An IP literal, ``localhost`` and the bound name cannot be rebound,
  so they pass; the port is not compared, because a port cannot be rebound while a
  forwarded one (``ssh -L 9000:127.0.0.1:8765``) legitimately differs.
* A cross-site request (``Origin`` of another site, ``Sec-Fetch-Site: cross-site``) is
  refused before it does anything: a ``text/plain`` POST needs no CORS preflight, so
  "the browser cannot read the answer" protects nothing when the request itself writes.

This module imports only the standard library; both servers use it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["HostPolicy", "host_name", "refusal"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def host_name(value: str | None) -> str | None:
    """The name part of a ``Host`` header (``[::1]:80`` -> ``::1``), lower case; None if malformed."""
    if value is None:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    else:
        name, colon, port = value.partition(":")
        if colon and not port.isdigit():
            return None
    name = name.rstrip(".")
    if not name or any(ch.isspace() or ch in "/@\\" for ch in name):
        return None
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """The ``Host`` names a server bound to ``bind_host`` answers to (see the module docs)."""

    names: frozenset[str]

    @classmethod
    def for_bind(cls, bind_host: str, extra: Iterable[str] = ()) -> HostPolicy:
        """Names for a server bound to ``bind_host``; ``extra`` adds names (a proxy's, say)."""
        bound = bind_host.strip("[]").lower().rstrip(".")
        names = {bound, *_LOOPBACK_NAMES, *(n.strip().lower().rstrip(".") for n in extra if n.strip())}
        if _is_ip(bound) and ipaddress.ip_address(bound).is_unspecified:
            names.add(socket.gethostname().lower())  # bound everywhere: the machine's own name
        return cls(frozenset(names))

    def allows(self, header: str | None) -> bool:
        """True for a missing ``Host`` (only non-browser HTTP/1.0 clients omit it), an IP literal or a known name."""
        if header is None:
            return True
        name = host_name(header)
        return name is not None and (_is_ip(name) or name in self.names)


def refusal(
    headers: Mapping[str, str],
    hosts: HostPolicy,
    *,
    allowed_origins: Iterable[str] = (),
    own_origin_ok: bool = False,
    navigation_ok: bool = False,
) -> str | None:
    """Why a request must be refused (a sentence for the error body), or None to serve it.

    ``allowed_origins`` are full origins (``https://notebook.example:8888``) whose pages may
    send requests. A server with pages of its own (the dashboard) passes ``own_origin_ok``
    to accept an ``Origin`` naming the host the request went to, and ``navigation_ok`` to
    let a link on another site open a page (``Sec-Fetch-Mode: navigate``): a navigation
    shows the answer to the user, never to the linking page.
    """
    host = headers.get("host")
    if not hosts.allows(host):
        return f"Host {host!r} is not an address this server is bound to (DNS rebinding?)"
    origin = headers.get("origin")
    if origin is not None and origin not in set(allowed_origins):
        own = own_origin_ok and host is not None and urlsplit(origin).netloc.lower() == host.strip().lower()
        if not own:
            return f"cross-origin request from {origin!r} refused: browsers' pages may not use this server"
    site = (headers.get("sec-fetch-site") or "").lower()
    navigation = navigation_ok and (headers.get("sec-fetch-mode") or "").lower() == "navigate"
    if site in ("cross-site", "same-site") and not navigation:
        return f"request refused: a browser sent it from another site (Sec-Fetch-Site: {site})"
    return None
