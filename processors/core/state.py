"""What the processors remember between batches, keyed so that one run's keys live together.

Four kinds of key, each a msgpack list so no run id or metric name can make two
keys collide:

- ``["run", run]``: the run's status, counters, alert rules, straggler and window state;
- ``["index", run]``: every series and metric the run has, to flush them all when it ends;
- ``["series", run, metric, rank]``: rollup buckets, summary, spike history, alert flags;
- ``["ranks", run, metric]``: cross-rank steps still waiting for ranks.

Every key records the last Kafka offset it has absorbed (``applied``).  State and
offsets are committed separately, so after a crash the same messages can come
again; a key skips what it already contains, which makes replays exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack
import numpy as np
from fleetlog.processors.core.aggregate import Aggregate
from fleetlog.processors.core.codec import pack, unpack
from fleetlog.processors.core.rollup import NONE

from fleetlog.events import RunStatus

__all__ = ["CrossState", "RunIndex", "RunState", "SeriesState", "key", "run_of"]

FORMAT = 1


def key(kind: str, run_id: str, *rest: str | int) -> bytes:
    return msgpack.packb([kind, run_id, *rest], use_bin_type=True)


_RUN_KEY_PREFIX = key("run", "")[:-1]  # the array header and "run"; the empty id is the last byte


def run_of(key_bytes: bytes) -> str | None:
    """The run id if ``key_bytes`` is a run's own key (``["run", run]``), else ``None``."""
    if not key_bytes.startswith(_RUN_KEY_PREFIX):
        return None
    return msgpack.unpackb(key_bytes)[1]


def _check(data: dict[str, Any], what: str) -> dict[str, Any]:
    if data.get("v") != FORMAT:
        raise ValueError(f"{what} state has format {data.get('v')!r}, this processor reads {FORMAT}")
    return data


@dataclass
class SeriesState:
    """One (run, metric, rank) series."""

    resolutions: tuple[int, ...] = ()
    res: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    bucket: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    buckets: Aggregate = field(default_factory=Aggregate.empty)
    frontier: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    evicted: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    summary: Aggregate = field(default_factory=Aggregate.empty)
    history: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    flags: int = 0
    applied: int = -1
    late: int = 0

    def for_resolutions(self, resolutions: tuple[int, ...]) -> SeriesState:
        """Drop buckets of resolutions no longer configured; start marks for new ones."""
        if self.resolutions == resolutions:
            return self
        old = dict(zip(self.resolutions, zip(self.frontier.tolist(), self.evicted.tolist(), strict=True), strict=True))
        keep = np.isin(self.res, resolutions)
        self.res, self.bucket, self.buckets = self.res[keep], self.bucket[keep], self.buckets.take(keep)
        self.frontier = np.array([old.get(r, (NONE, NONE))[0] for r in resolutions], np.int64)
        self.evicted = np.array([old.get(r, (NONE, NONE))[1] for r in resolutions], np.int64)
        self.resolutions = resolutions
        return self

    def encode(self) -> bytes:
        return pack(
            {
                "v": FORMAT,
                "resolutions": list(self.resolutions),
                "res": self.res,
                "bucket": self.bucket,
                "buckets": self.buckets.to_arrays(),
                "frontier": self.frontier,
                "evicted": self.evicted,
                "summary": self.summary.to_arrays(),
                "history": self.history,
                "flags": self.flags,
                "applied": self.applied,
                "late": self.late,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> SeriesState:
        d = _check(unpack(raw), "series")
        return cls(
            resolutions=tuple(d["resolutions"]),
            res=d["res"],
            bucket=d["bucket"],
            buckets=Aggregate.from_arrays(d["buckets"]),
            frontier=d["frontier"],
            evicted=d["evicted"],
            summary=Aggregate.from_arrays(d["summary"]),
            history=d["history"],
            flags=d["flags"],
            applied=d["applied"],
            late=d["late"],
        )


_PENDING = {"step": np.int64, "rank": np.int64, "value": np.float64, "ts": np.int64}


@dataclass
class CrossState:
    """Steps of one (run, metric) that not every rank has reported yet."""

    pending: dict[str, np.ndarray] = field(default_factory=lambda: {k: np.empty(0, t) for k, t in _PENDING.items()})
    ranks_seen: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    done_through: int = NONE
    applied: int = -1
    late: int = 0

    def encode(self) -> bytes:
        return pack({"v": FORMAT, **asdict(self)})

    @classmethod
    def decode(cls, raw: bytes) -> CrossState:
        d = _check(unpack(raw), "ranks")
        d.pop("v")
        d["pending"] = {k: np.asarray(d["pending"][k], t) for k, t in _PENDING.items()}
        return cls(**d)


@dataclass
class RunIndex:
    """Everything a run has logged, so its end can flush every series."""

    series: list[tuple[str, int]] = field(default_factory=list)
    cross: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        return pack({"v": FORMAT, "series": [list(s) for s in self.series], "cross": self.cross})

    @classmethod
    def decode(cls, raw: bytes) -> RunIndex:
        d = _check(unpack(raw), "index")
        return cls(series=[(m, int(r)) for m, r in d["series"]], cross=list(d["cross"]))


@dataclass
class RunState:
    """The run as a whole.  Times are unix seconds; ``received`` fields use the processor's clock."""

    partition: int = 0
    project: str = ""
    experiment: str = ""
    status: str = ""
    status_sent_at: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    lost: bool = False
    last_heartbeat: float = 0.0
    first_point_ms: int = 0
    last_point_ms: int = 0
    last_step: int = 0
    points: int = 0
    world_size: int = 1
    ranks: list[int] = field(default_factory=list)
    last_received: float = 0.0
    metrics_applied: int = -1
    events_applied: int = -1
    revision: int = 0
    late_points: int = 0
    cross_pending: bool = False
    rules: dict[str, list[float | None]] = field(default_factory=dict)
    stragglers: dict[str, list[float]] = field(default_factory=dict)
    windows: dict[str, list[float]] = field(default_factory=dict)
    window_marks: dict[str, int] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.lost or self.status in RunStatus.TERMINAL

    def encode(self) -> bytes:
        return pack({"v": FORMAT, **asdict(self)})

    @classmethod
    def decode(cls, raw: bytes) -> RunState:
        d = _check(unpack(raw), "run")
        d.pop("v")
        return cls(**d)
