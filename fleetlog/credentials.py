"""The embedded store's two secrets: a writer (the sinks) and a read-only reader (everyone else).

The store's HTTP endpoint always asks for credentials, also on loopback: on a shared GPU
node any local user, and any web page a local browser opens, can reach 127.0.0.1. The
first process that needs the secrets (``fleetlog up``, a sink, ``fleetlog store serve``
or a reader) generates both with :func:`secrets.token_urlsafe` and stores them in
``$FLEETLOG_HOME/credentials/store.json``: folder 0700, file 0600 from its creation
(``os.open`` with ``O_EXCL`` and mode 0600 on a private temporary name, then a hard link
to the final name, so no process ever reads a half-written file and two racing
processes agree on one pair). Every fleetlog process of the same user finds them there;
``FLEETLOG_STORE_WRITER_PASSWORD`` / ``FLEETLOG_STORE_READER_PASSWORD`` override them.

The users are fixed: ``fleetlog_writer`` may insert and run migrations, ``fleetlog_reader``
is read-only in the engine (``readonly = 1`` on its handles, see ``fleetlog.store.endpoint._engine``).
``FLEETLOG_HTTP_PASSWORD`` (one optional password, required only off loopback) is gone:
its job is the writer password's now.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from fleetlog._private import FILE_MODE, private_dir, tighten
from fleetlog.config import Settings, is_loopback
from fleetlog.errors import ConfigError

__all__ = [
    "READER_USER",
    "WRITER_USER",
    "Role",
    "StoreCredentials",
    "StoreUser",
    "credentials_path",
    "is_local_store",
    "load_credentials",
    "store_url",
]

Role = Literal["reader", "writer"]
WRITER_USER = "fleetlog_writer"
READER_USER = "fleetlog_reader"
_VERSION = 1

log = logging.getLogger("fleetlog")


@dataclass(frozen=True)
class StoreUser:
    """One user of the store's endpoint; ``repr`` never shows the password."""

    role: Role
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class StoreCredentials:
    """The writer and the reader the endpoint accepts."""

    writer: StoreUser
    reader: StoreUser

    @classmethod
    def generate(cls) -> StoreCredentials:
        """Fresh random secrets (32 bytes each): what a first start, or a test's endpoint, uses."""
        return cls(
            writer=StoreUser("writer", WRITER_USER, secrets.token_urlsafe(32)),
            reader=StoreUser("reader", READER_USER, secrets.token_urlsafe(32)),
        )

    def user(self, role: Role) -> StoreUser:
        return self.writer if role == "writer" else self.reader

    def authenticate(self, name: str, password: str) -> Role | None:
        """The role ``name``/``password`` log in as, or None. Both users are compared in constant time."""
        found: Role | None = None
        for user in (self.writer, self.reader):
            same_name = hmac.compare_digest(name.encode(), user.name.encode())
            same_password = hmac.compare_digest(password.encode(), user.password.encode())
            if same_name and same_password and user.password:
                found = user.role
        return found

    def to_json(self) -> str:
        users = {u.role: {"user": u.name, "password": u.password} for u in (self.writer, self.reader)}
        return json.dumps({"version": _VERSION, **users}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str) -> StoreCredentials:
        try:
            data = json.loads(text)
            return cls(
                writer=StoreUser("writer", str(data["writer"]["user"]), str(data["writer"]["password"])),
                reader=StoreUser("reader", str(data["reader"]["user"]), str(data["reader"]["password"])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{source} is not a fleetlog credentials file ({type(exc).__name__}: {exc}); "
                "delete it and restart the store (`fleetlog down && fleetlog up`) to generate new secrets"
            ) from None


def credentials_path(home: Path) -> Path:
    """Where the store's secrets live under ``$FLEETLOG_HOME``."""
    return Path(home) / "credentials" / "store.json"


def load_credentials(settings: Settings, *, create: bool = True) -> StoreCredentials:
    """The store's credentials: the file under ``$FLEETLOG_HOME`` (made on first need), then env overrides.

    With ``create=False`` a missing file is a :class:`ConfigError` that says how to make one,
    unless both passwords come from the environment.
    """
    if os.environ.get("FLEETLOG_HTTP_PASSWORD") and not settings.store.writer_password:
        log.warning("FLEETLOG_HTTP_PASSWORD is no longer read: set FLEETLOG_STORE_WRITER_PASSWORD instead")
    writer, reader = settings.store.writer_password, settings.store.reader_password
    if writer and reader:
        return StoreCredentials(StoreUser("writer", WRITER_USER, writer), StoreUser("reader", READER_USER, reader))
    path = credentials_path(settings.home)
    stored = _read(path, settings.home)
    if stored is None:
        if not create:
            raise ConfigError(
                f"no store credentials at {path}: start the store first (`fleetlog up` or `fleetlog store serve`), "
                "or set FLEETLOG_STORE_WRITER_PASSWORD and FLEETLOG_STORE_READER_PASSWORD"
            )
        stored = _create(path, settings.home)
    if writer:
        stored = replace(stored, writer=replace(stored.writer, password=writer))
    if reader:
        stored = replace(stored, reader=replace(stored.reader, password=reader))
    return stored


def _read(path: Path, home: Path) -> StoreCredentials | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    private_dir(path.parent, root=home)
    tighten(path, FILE_MODE)  # a copy put there by hand with looser bits
    return StoreCredentials.from_json(text, source=str(path))


def _create(path: Path, home: Path) -> StoreCredentials:
    """Write fresh secrets atomically; if another process won the race, use its file."""
    private_dir(path.parent, root=home)
    fresh = StoreCredentials.generate()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(fresh.to_json())
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # never replaces an existing file: the first writer wins
        except FileExistsError:
            return _read(path, home) or fresh
    finally:
        tmp.unlink(missing_ok=True)
    return fresh


def is_local_store(url: str, settings: Settings) -> bool:
    """True when ``url`` is this home's own endpoint: http on loopback at ``FLEETLOG_HTTP_PORT``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    try:
        port = parts.port or 8123
    except ValueError:
        return False
    return port == settings.store.http_port and is_loopback(parts.hostname)


def store_url(settings: Settings, role: Role) -> str:
    """The URL fleetlog's own clients of ``role`` use: credentials filled in for the local store.

    The embedded store is reached through its endpoint; an ``http://`` URL that names the
    local endpoint (``fleetlog store serve``) and carries no user gets this home's
    credentials. Any other URL (a ClickHouse server) is returned as it is.
    """
    if settings.store.is_embedded:
        user = load_credentials(settings).user(role)
        host = f"[{settings.store.http_host}]" if ":" in settings.store.http_host else settings.store.http_host
        return f"http://{_userinfo(user)}@{host}:{settings.store.http_port}"
    parts = urlsplit(settings.store.url)
    if parts.username or not is_local_store(settings.store.url, settings):
        return settings.store.url
    user = load_credentials(settings).user(role)
    return urlunsplit(parts._replace(netloc=f"{_userinfo(user)}@{parts.netloc}"))


def _userinfo(user: StoreUser) -> str:
    return f"{quote(user.name, safe='')}:{quote(user.password, safe='')}"
