"""Two small network rules every stage shares: masking a URL's password, and "is this loopback"."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_loopback", "mask_url"]


def mask_url(url: str) -> str:
    """Hide the password in a URL so it can be logged or printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (unresolvable: False).

    The dashboard and the store's endpoint both refuse to bind beyond loopback without a
    secret; this is the one test of "beyond loopback" they share.
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
