"""A seeded generator of hostile wire messages: valid envelopes, then mutated.

Deterministic (one seed) so a failure reproduces; cheap enough for 100,000 cases.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import msgpack
import numpy as np

from fleetlog.events import Envelope, Source, encode, encode_metrics

_JUNK = [
    None,
    True,
    -1,
    2**64 - 1,
    1.5,
    float("nan"),
    "",
    "x" * 300,
    b"\x00\xff",
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": 1}},
]


def valid_messages(rng: random.Random) -> Iterator[bytes]:
    """An endless mix of every event kind, as the SDK would produce them."""
    kinds = ["metrics", "run", "params", "tags", "record", "logs", "heartbeat", "artifact", "properties", "untag"]
    while True:
        kind = rng.choice(kinds)
        env = Envelope(
            kind=kind,
            run_id=f"run-{rng.randrange(5)}",
            project="p",
            experiment="e",
            source=Source(host="h", pid=1, rank=rng.randrange(4), world_size=4),
            session="s" * rng.randrange(1, 40),
            seq=rng.randrange(1000),
            sent_at=1.7e9,
        )
        if kind == "metrics":
            n = rng.randrange(1, 50)
            names = [f"m{i}" for i in range(rng.randrange(1, 5))]
            idx = np.array([rng.randrange(len(names)) for _ in range(n)], np.uint32)
            yield next(encode_metrics(env, names, idx, np.arange(n), np.arange(n), np.random.default_rng(n).random(n)))[
                1
            ]
            continue
        body = {
            "run": {"name": "n", "status": "Running", "start": 1.7e9, "end": 0, "error": {}},
            "params": {"lr": 0.1, "name": "x"},
            "tags": {"t": "v"},
            "properties": {"p": 1},
            "untag": {"keys": ["t"]},
            "record": {"name": "r", "type": "list", "data": [1, 2], "index": 1, "time": 1.7e9},
            "logs": {"ts": [1], "stream": ["stdout"], "level": [""], "logger": [""], "message": ["hi"]},
            "heartbeat": {"time": 1.7e9},
            "artifact": {
                "name": "a.png",
                "kind": "image",
                "size": 3,
                "sha256": "0" * 64,
                "uri": "file:///a",
                "content_type": "image/png",
                "inline": b"png",
                "time": 1.7e9,
            },
        }[kind]
        yield encode(dataclasses.replace(env, body=body))


def _mutate_structure(rng: random.Random, data: bytes) -> bytes:
    raw = msgpack.unpackb(data, raw=False)
    target = raw
    if isinstance(raw.get("body"), dict) and raw["body"] and rng.random() < 0.6:
        target = raw["body"]
    key = rng.choice(list(target))
    action = rng.random()
    if action < 0.4:
        target[key] = rng.choice(_JUNK)
    elif action < 0.6:
        del target[key]
    elif action < 0.8 and isinstance(target[key], bytes):
        target[key] = target[key][: rng.randrange(len(target[key]) + 1)] + b"\x01" * rng.randrange(3)
    else:
        target[rng.choice(["zz", "v", "kind", "idx", "names"])] = rng.choice(_JUNK)
    return msgpack.packb(raw, use_bin_type=True)


def mutated(rng: random.Random, data: bytes) -> bytes:
    """One of: byte flips, truncation, splicing, structural field damage, or noise."""
    roll = rng.random()
    buf = bytearray(data)
    if roll < 0.3:
        for _ in range(rng.randrange(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if roll < 0.45:
        return bytes(buf[: rng.randrange(len(buf))])
    if roll < 0.55:
        cut = rng.randrange(len(buf))
        return bytes(buf[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + buf[cut:])
    if roll < 0.9:
        return _mutate_structure(rng, data)
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))


def cases(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    source = valid_messages(rng)
    for _ in range(count):
        yield mutated(rng, next(source))
