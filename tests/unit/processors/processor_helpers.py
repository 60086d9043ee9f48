"""Shared builders for the processor unit tests: envelopes, a dict store, a brute-force reference."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from fleetlog.events import Envelope, Source, decode, encode_metrics

T0 = int(time.time()) // 3600 * 3600 * 1000  # ms, recent: fleet windows have a 30-day TTL


def metrics(run: str, names, idx, step, value, *, rank: int = 0, world: int = 1, ts=None, host: str = "h", exp="e"):
    """A decoded metrics envelope, as the processors receive it."""
    step = np.asarray(step, np.int64)
    ts = T0 + step * 10 + rank if ts is None else np.asarray(ts, np.int64)
    env = Envelope(kind="metrics", run_id=run, experiment=exp, source=Source(host=host, rank=rank, world_size=world))
    [(_, msg)] = encode_metrics(
        env, names, np.asarray(idx, np.uint32), step, ts, np.asarray(value, float), max_bytes=1 << 30
    )
    return decode(msg)


def apply(store: dict, writes: dict) -> None:
    for k, v in writes.items():
        if v is None:
            store.pop(k, None)
        else:
            store[k] = v


def columns(rows: list[dict]) -> pd.DataFrame:
    """Output column chunks of one table -> one DataFrame."""
    return pd.concat([pd.DataFrame({k: list(v) for k, v in part.items()}) for part in rows], ignore_index=True)


def reference(step, value) -> dict:
    """The envelope aggregate of points given in arrival order, by definition."""
    step, value = list(step), list(value)
    finite = [(v, s) for s, v in zip(step, value, strict=False) if math.isfinite(v)]
    lo = min(finite) if finite else (math.nan, min(step))
    hi = min(finite, key=lambda vs: (-vs[0], vs[1])) if finite else (math.nan, min(step))
    first_step, last_step = min(step), max(step)
    first = next(v for s, v in zip(step, value, strict=False) if s == first_step)
    last = [v for s, v in zip(step, value, strict=False) if s == last_step][-1]
    return {
        "count": len(step),
        "nonfinite": len(step) - len(finite),
        "sum": sum(v for v, _ in finite),
        "min": lo[0],
        "min_step": lo[1],
        "max": hi[0],
        "max_step": hi[1],
        "first": first,
        "first_step": first_step,
        "last": last,
        "last_step": last_step,
    }


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
