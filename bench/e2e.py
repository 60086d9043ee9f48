"""End to end: a simulated fleet through SDK -> Kafka -> processors -> sink -> ClickHouse, on this machine.

Every stage is a real process started the way ``fleetlog up`` starts it (``LocalStack``):
the broker, one or more sinks, one or more Faust processors, and fleet ranks that log
through the public SDK (``bench.fleet``).  Points count as landed when ``count()`` in
ClickHouse says so.  A second sink writes through the first one's HTTP endpoint, as
sinks share a ClickHouse server when scaled out, so the exactly-once protocol (shared
intents and dedup tokens) holds across them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench._common import percentile
from fleetlog.config import Settings
from fleetlog.credentials import load_credentials
from fleetlog.localkafka import free_port
from fleetlog.stack import PROCESSOR, SINK, LocalStack

__all__ = ["Deployment", "deploy", "latency", "throughput"]

METRICS_PER_STEP = 30  # fleetlog.demo.curves


@dataclass
class Deployment:
    stacks: list[LocalStack]
    sinks: int
    processors: int
    broker_pid: int | None
    prefix: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.stacks[0].settings

    def client(self) -> Any:
        """A reader of the first stack's store, as fleetlog's own readers log in."""
        import clickhouse_connect

        reader = load_credentials(self.settings).reader
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=self.settings.store.http_port,
            database="fleetlog",
            send_receive_timeout=60,
            username=reader.name,
            password=reader.password,
        )

    def producer_env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "FLEETLOG_HOME": str(home),
            "FLEETLOG_KAFKA_BOOTSTRAP": self.settings.kafka.bootstrap,
            "FLEETLOG_TOPIC_PREFIX": self.prefix,
            "FLEETLOG_TELEMETRY_INTERVAL_SECONDS": "0",
            "FLEETLOG_OUTPUTS_DIR": "",
        }


@contextmanager
def deploy(root: Path, bootstrap: str, broker_pid: int | None, *, sinks: int, processors: int) -> Iterator[Deployment]:
    """Start ``sinks`` sinks and ``processors`` processors on fresh topics; stop them after."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    first = Settings.build(
        home=root / f"{prefix}-0",
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        http_port=free_port(),
        ui_port=free_port(),
        telemetry_interval_seconds=0,
    )
    stacks = [LocalStack(first)]
    writer = load_credentials(first).writer  # the other stacks' sinks write to the first one's store
    for i in range(1, max(sinks, processors)):
        stacks.append(
            LocalStack(
                Settings.build(
                    home=root / f"{prefix}-{i}",
                    kafka_bootstrap=bootstrap,
                    topic_prefix=prefix,
                    clickhouse_url=f"http://{writer.name}:{writer.password}@127.0.0.1:{first.store.http_port}/fleetlog",
                    http_port=free_port(),
                    ui_port=free_port(),
                    telemetry_interval_seconds=0,
                )
            )
        )
    dep = Deployment(stacks, sinks, processors, broker_pid, prefix)
    try:
        for i in range(sinks):
            dep.pids[f"sink{i}"] = stacks[i].start(SINK, timeout_seconds=120)
        for i in range(processors):
            dep.pids[f"processor{i}"] = stacks[i].start(PROCESSOR, timeout_seconds=180)
        yield dep
    finally:
        for i in reversed(range(processors)):
            stacks[i].stop(PROCESSOR)
        for i in reversed(range(sinks)):
            stacks[i].stop(SINK)


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            out[name] = float("nan")
    return out


def _launch(dep: Deployment, root: Path, specs: list[dict]) -> list[subprocess.Popen]:
    procs = []
    for i, spec in enumerate(specs):
        home = root / f"{dep.prefix}-producer{i}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.fleet", json.dumps(spec)],
                env=dep.producer_env(home),
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _collect(procs: list[subprocess.Popen], timeout: float) -> list[dict]:
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"fleet producer exited with {p.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _landed(client: Any, prefix: str) -> tuple[int, int]:
    count, unique = client.query(
        "SELECT count(), uniqExact(run_id, metric, rank, step) FROM metric_points WHERE startsWith(run_id, {p:String})",
        parameters={"p": prefix},
    ).result_rows[0]
    return int(count), int(unique)


def _slope(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares points/s over (time, landed) samples; None with too few (inserts land in steps)."""
    if len(samples) < 5:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mc = sum(c for _, c in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (c - mc) for t, c in samples) / var if var else None


def _rows(client: Any) -> int:
    """Rows in metric_points from part metadata: cheap enough to poll without loading the sink."""
    return int(
        client.query(
            "SELECT sum(rows) FROM system.parts WHERE database = 'fleetlog' AND table = 'metric_points' AND active"
        ).result_rows[0][0]
    )


def _lags(dep: Deployment) -> tuple[int, int]:
    """Records the processors and the sinks have not committed yet, over all their topics."""
    from fleetlog.lag import consumer_lag

    s = dep.settings
    source = [s.metrics_topic, s.events_topic]
    outputs = [s.derived_topic, s.dead_letter_topic, f"{s.topics.prefix}.alerts"]

    async def both() -> tuple[dict[str, int], dict[str, int]]:
        return await asyncio.gather(
            consumer_lag(s, f"{s.topics.prefix}-processor", source), consumer_lag(s, "fleetlog-sink", source + outputs)
        )

    processor, sink = asyncio.run(both())
    return sum(processor.values()), sum(sink.values())


def throughput(
    dep: Deployment, root: Path, *, producers: int, runs: int, steps: int, profile_seconds: float = 0
) -> dict[str, Any]:
    """Every rank logs as fast as it can; how fast do points land in ClickHouse?"""
    tag = f"{dep.prefix}-fleet"
    start_at = time.time() + 8  # imports on a loaded machine
    specs = [
        {"prefix": tag, "runs": runs, "rank": r, "world": producers, "steps": steps, "start_at": start_at}
        for r in range(producers)
    ]
    expected = producers * runs * steps * METRICS_PER_STEP
    procs = _launch(dep, root, specs)
    pids = {**dep.pids, **({"broker": dep.broker_pid} if dep.broker_pid else {})}
    while time.time() < start_at:
        time.sleep(0.05)
    cpu0, t0 = _cpu(pids), time.time()
    client = dep.client()
    series: list[tuple[float, int]] = []
    profiles: dict[str, Any] = {}
    profilers = _start_profiles(dep, profile_seconds, root) if profile_seconds else {}
    count = 0
    deadline = t0 + 600
    base = _rows(client)  # a fresh deployment's store: nothing yet, or an earlier section's points
    while time.time() < deadline:
        count = _rows(client) - base
        series.append((time.time(), count))
        if count >= expected:
            break
        time.sleep(0.5)
    t_landed = time.time()
    produced = _collect(procs, 120)
    count, unique = _landed(client, tag)
    for name, (proc, path) in profilers.items():
        proc.wait(timeout=profile_seconds + 60)
        profiles[name] = _top_frames(path)
    caught_up = None  # every stage done: processors consumed it all, sinks inserted their rows too
    while time.time() < deadline:
        if _lags(dep) == (0, 0):
            caught_up = time.time()
            break
        time.sleep(0.5)
    cpu1, t1 = _cpu(pids), time.time()
    time.sleep(1.2)  # the sinks write their counters every second
    sink_stats = _sink_stats(dep)
    rollups = client.query(
        "SELECT count() FROM metric_rollups WHERE startsWith(run_id, {p:String})", parameters={"p": tag}
    ).result_rows[0][0]
    first = min(p["start"] for p in produced)
    wall = t_landed - first
    middle = [(t, c) for t, c in series if 0.1 * expected <= c <= 0.9 * expected]
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu["producers"] = sum(p["cpu_seconds"] for p in produced)
    return {
        "load1": round(os.getloadavg()[0], 1),
        "expected": expected,
        "landed": count,
        "unique": unique,
        "exact": count == expected == unique,
        "dropped_by_sdk": sum(p["dropped"] for p in produced),
        "producer_waited_seconds": sum(p["waited_seconds"] for p in produced),
        "log_seconds": max(p["logged"] for p in produced) - first,
        "log_points_per_second": expected / (max(p["logged"] for p in produced) - first),
        "landed_seconds": wall,
        "end_to_end_points_per_second": expected / wall,
        "steady_points_per_second": _slope(middle),
        "cpu_seconds": cpu,
        "cpu_cores": {k: v / (t1 - t0) for k, v in cpu.items()},
        "cpu_us_per_point": {k: v / expected * 1e6 for k, v in cpu.items()},
        "all_stages_seconds": None if caught_up is None else caught_up - first,
        "all_stages_points_per_second": None if caught_up is None else expected / (caught_up - first),
        "rollup_rows": rollups,
        "sink_stats": sink_stats,
        "profiles": profiles,
    }


def _sink_stats(dep: Deployment) -> dict[str, Any]:
    """Each sink's counters (inserts, flushes, rows per table) as ``fleetlog status`` reads them."""
    out: dict[str, Any] = {}
    for i in range(dep.sinks):
        workers = dep.stacks[i].status()["sink"]["workers"]
        for stats in workers.values():
            out[f"sink{i}"] = stats.get("stats", {})
    return out


def latency(
    dep: Deployment, root: Path, *, rate: float, producers: int, runs: int, seconds: float, poll_seconds: float = 0.1
) -> dict[str, Any]:
    """Under ``rate`` points/s of fleet load, how long until a probe's points are queryable (raw and rollup)?"""
    tag = f"{dep.prefix}-lat"
    per_producer = rate / producers
    steps = max(int(per_producer * seconds / (runs * METRICS_PER_STEP)), 1)
    start_at = time.time() + 8
    specs = [
        {
            "prefix": tag,
            "runs": runs,
            "rank": r,
            "world": producers,
            "steps": steps,
            "start_at": start_at,
            "rate": per_producer,
        }
        for r in range(producers)
    ]
    probe_id = f"{tag}-probe"
    specs.append({"prefix": probe_id, "probe_hz": 20, "seconds": seconds, "start_at": start_at + 2})
    procs = _launch(dep, root, specs)
    client = dep.client()
    raw: dict[int, float] = {}
    rolled: dict[int, float] = {}
    last_step, last_bucket, next_rollup_poll = -1, -1, 0.0
    stop = start_at + 2 + seconds + 15
    while time.time() < stop:
        rows = client.query(
            "SELECT step, toUnixTimestamp64Milli(ts) FROM metric_points "
            "WHERE run_id = {r:String} AND metric = 'probe' AND step > {s:Int64}",
            parameters={"r": probe_id, "s": last_step},
        ).result_rows
        now = time.time()
        for step, ts in rows:
            raw.setdefault(step, now - ts / 1000)
            last_step = max(last_step, step)
        if now >= next_rollup_poll:
            next_rollup_poll = now + 0.25
            rows = client.query(
                "SELECT bucket, toUnixTimestamp64Milli(max(last_ts)) FROM metric_rollups "
                "WHERE run_id = {r:String} AND metric = 'probe' AND resolution = 10 AND bucket > {b:Int64} "
                "GROUP BY bucket",
                parameters={"r": probe_id, "b": last_bucket},
            ).result_rows
            now = time.time()
            for bucket, ts in rows:
                rolled.setdefault(bucket, now - ts / 1000)
                last_bucket = max(last_bucket, bucket)
        time.sleep(poll_seconds)
    produced = _collect(procs, 120)
    fleet = [p for p in produced if "flushed" in p]
    load = sum(p["points"] for p in fleet) / max(max(p["logged"] for p in fleet) - min(p["start"] for p in fleet), 1e-9)
    probe = produced[-1]
    raw_s, roll_s = list(raw.values()), list(rolled.values())
    return {
        "target_rate": rate,
        "achieved_rate": load,
        "probe_points": probe["points"],
        "raw_seen": len(raw_s),
        "raw_p50": percentile(raw_s, 50),
        "raw_p99": percentile(raw_s, 99),
        "rollup_seen": len(roll_s),
        "rollup_p50": percentile(roll_s, 50) if roll_s else None,
        "rollup_p99": percentile(roll_s, 99) if roll_s else None,
        "poll_seconds": poll_seconds,
    }


def _start_profiles(dep: Deployment, seconds: float, root: Path) -> dict[str, tuple[subprocess.Popen, Path]]:
    """py-spy on the sink and processor processes while the fleet runs (raw folded stacks)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return {}
    out = {}
    for name, pid in dep.pids.items():
        path = root / f"{dep.prefix}-{name}.folded"
        cmd = [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50"]
        cmd += ["--format", "raw", "--output", str(path), "--nonblocking"]
        out[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path)
    return out


def _top_frames(path: Path, top: int = 8) -> dict[str, Any]:
    """Shares of samples: leaf functions (self), and fleetlog's own functions on the stack (inclusive)."""
    if not path.exists():
        return {"error": "py-spy wrote nothing (no ptrace permission?)"}
    ours = ("(fleetlog/", "(sinks/", "(processors/", "(producers/")
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = _frame_name(frames[-1])
        own[leaf] = own.get(leaf, 0) + n
        for f in {_frame_name(f, full=True) for f in frames if any(o in f for o in ours)}:
            incl[f] = incl.get(f, 0) + n
    if not total:
        return {"error": "no samples"}

    def share(d: dict[str, int]) -> dict[str, float]:
        return {k: round(v / total, 3) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]}

    return {"samples": total, "self": share(own), "inclusive_fleetlog": share(incl)}


def _frame_name(frame: str, *, full: bool = False) -> str:
    """``func (dir/file.py:12)`` -> ``func (file.py)``, or ``func (dir/file.py)`` when ``full``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({path if full else path.rsplit('/', 1)[-1]})"
