"""Poison messages: Kafka record values that once stopped a stage, or that a client must not be able to send.

Each builder returns raw bytes as a hostile SDK client would produce them.  Some are written
with msgpack's low-level ``Packer`` because msgpack itself refuses to write them (nesting deeper
than its own stack, lengths the bytes cannot hold).  Shared by the sink, processor and
through-Kafka tests; ``tests/`` is on ``sys.path``, so import it as ``from poison import ...``.
"""

from __future__ import annotations

import msgpack

from fleetlog.events import Envelope, encode


def header(run_id: str, kind: str, *, sent: float = 1.0) -> dict:
    """An envelope's fields without its body (no producer session: nothing is de-duplicated)."""
    return {
        "v": 1,
        "kind": kind,
        "project": "",
        "experiment": "poison",
        "run": run_id,
        "src": ["attacker", 1, 0, 1],
        "session": "",
        "seq": 0,
        "sent": sent,
    }


def with_raw_body(run_id: str, kind: str, raw_body: bytes) -> bytes:
    """A well-formed envelope whose body is ``raw_body``, msgpack bytes written by hand."""
    head = header(run_id, kind)
    packer = msgpack.Packer()
    out = packer.pack_map_header(len(head) + 1)
    out += b"".join(packer.pack(k) + packer.pack(v) for k, v in head.items())
    return out + packer.pack("body") + raw_body


def deep_record(run_id: str, depth: int = 1_000) -> bytes:
    """A ``record`` event whose data is ``depth`` lists, one inside the other (the sink's old RecursionError)."""
    packer = msgpack.Packer()
    fields = {"name": "deep", "type": "list", "time": 1.0}
    body = packer.pack_map_header(len(fields) + 1)
    body += b"".join(packer.pack(k) + packer.pack(v) for k, v in fields.items())
    body += packer.pack("data") + b"\x91" * (depth - 1) + b"\x90"
    return with_raw_body(run_id, "record", body)


def wide_deep_record(run_id: str, elements: int = 100_000) -> bytes:
    """A ``record`` of ``elements`` numbers in lists of ten, with one branch 200 levels deep at the very end."""
    data: list = [[float(i + j) for j in range(10)] for i in range(0, elements, 10)]
    branch: list = []
    for _ in range(199):
        branch = [branch]
    data.append(branch)
    return encode(Envelope(kind="record", run_id=run_id, body={"name": "wide", "type": "table", "data": data}))


def huge_declared_length(run_id: str) -> bytes:
    """A ``params`` event whose body claims to be a map of 4 billion pairs, in a few bytes."""
    return with_raw_body(run_id, "params", b"\xdf\xff\xff\xff\xff" + msgpack.packb("lr") + msgpack.packb(0.1))


def forged_rollup(run_id: str) -> bytes:
    """Derived ``metric_rollups`` rows as an SDK client could send them on its own topics."""
    columns = {
        "run_id": [run_id],
        "metric": ["loss"],
        "rank": [0],
        "resolution": [10],
        "bucket": [0],
        "count": [1],
        "sum": [-1e9],
    }
    return encode(
        Envelope(kind="rows", run_id=run_id, sent_at=1.0, body={"table": "metric_rollups", "columns": columns})
    )


def forged_alert(run_id: str) -> bytes:
    """An ``alerts`` row (a page to whoever watches alerts) forged by an SDK client."""
    columns = {"run_id": [run_id], "rule": ["nan"], "metric": ["loss"], "message": ["forged"]}
    return encode(Envelope(kind="rows", run_id=run_id, sent_at=1.0, body={"table": "alerts", "columns": columns}))
