"""The five benchmark sections of issue 7 (plus scale-out): run, compare, turn into rows.

Baselines (MLflow, TensorBoard) come from the ``bench`` extra; without it their rows say so.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import Row, in_subprocess
from bench.storage import REALISTIC, WORST

if TYPE_CHECKING:
    from bench.__main__ import Bench

__all__ = ["e2e", "hotpath", "queries", "scaleout", "storage"]

# The whole-pipeline sections live beside these, in their own module.
from bench.sections_e2e import e2e, scaleout

HOT, STORE, QUERY = "1 hot path", "4 storage", "5 queries"


def _baseline(bench: Bench, key: str, target: str, **kwargs: Any) -> dict[str, Any] | None:
    """A competitor's figure, or None (recorded) when it cannot run here."""
    try:
        out = in_subprocess(target, **kwargs)
    except Exception as exc:  # a missing extra or a competitor's own failure must not end the bench
        bench.raw.setdefault("baseline_errors", {})[key] = f"{type(exc).__name__}: {exc}"
        print(f"   baseline {key} unavailable: {type(exc).__name__}: {exc}", flush=True)
        return None
    bench.raw.setdefault("baselines", {})[key] = out
    return out


def _x(other: float, ours: float) -> str:
    return f"x{other / ours:,.0f}" if other >= 10 * ours else f"x{other / ours:.1f}"


def hotpath(bench: Bench) -> None:
    z, kafka = bench.sizes, bench.kafka()
    fl = in_subprocess(
        "bench.hotpath.fleetlog_hot",
        bootstrap=kafka.bootstrap,
        topic_prefix=f"hot{uuid.uuid4().hex[:6]}",
        home=str(bench.root / "hot"),
        calls=z.hot_calls,
        reps=z.hot_reps,
    )
    bench.raw["hotpath"] = fl
    reps = fl["rss_after_each_rep_mib"]
    log_us, floor_us, many_us = fl["log_ns"] / 1e3, fl["floor_ns"] / 1e3, fl["log_metrics_ns_per_point"] / 1e3
    bench.add(
        Row(
            HOT,
            "run.log(name, value), per call",
            log_us,
            "µs",
            "≤ 0.5 µs",
            log_us <= 0.5,
            f"wall clock, median of reps, the sender shipping to Kafka during each; "
            f"floor (method call + time.time + list append) "
            f"{floor_us:.2f} µs in the same run ({_x(log_us, floor_us)}); CPU of the logging thread "
            f"{fl['log_cpu_ns'] / 1e3:.2f} µs (floor {fl['floor_cpu_ns'] / 1e3:.2f})",
        ),
        Row(
            HOT,
            "run.log_metrics(100 metrics), per point",
            many_us,
            "µs",
            "≤ 0.5 µs",
            many_us <= 0.5,
            f"wall clock; CPU of the logging thread {fl['log_metrics_cpu_ns_per_point'] / 1e3:.2f} µs",
        ),
        Row(
            HOT,
            "single run.log call, p99.9",
            fl["single_call_p999_ns"] / 1e3,
            "µs",
            "never blocks",
            None,
            f"no I/O and no lock on the caller's thread; the tail is the GIL (the sender thread) and the OS: "
            f"floor's p99.9 {fl['floor_single_p999_ns'] / 1e3:.1f} µs; max {fl['single_call_max_ns'] / 1e6:.1f} ms "
            f"(floor's {fl['floor_single_max_ns'] / 1e6:.1f} ms); p50 {fl['single_call_p50_ns'] / 1e3:.2f} µs "
            "incl. the timer",
        ),
        Row(
            HOT,
            "peak extra memory while logging",
            fl["peak_extra_rss_mib"],
            "MiB",
            f"≤ {4 * fl['buffer_bound_mib']:.0f} MiB",
            fl["peak_extra_rss_mib"] <= 4 * fl["buffer_bound_mib"],
            f"RSS over the reps (MiB): {', '.join(f'{m:.0f}' for m in reps)}; bound: the buffer "
            f"({fl['buffer_bound_mib']:.0f} MiB per run) plus one drained batch as numpy columns and as Kafka "
            f"messages in flight; {fl['dropped']:,} points dropped",
        ),
    )
    _burst(bench)
    root = bench.root / "hot-baselines"
    for store, sync in (("file", True), ("sqlite", True), ("file", False), ("sqlite", False)):
        calls = z.mlflow_sqlite_calls if (store == "sqlite" and sync) else z.mlflow_calls
        key = f"mlflow-{store}-{'sync' if sync else 'async'}"
        r = _baseline(
            bench,
            key,
            "bench.hotpath.mlflow_hot",
            root=str(root / key),
            store=store,
            synchronous=sync,
            calls=calls,
            reps=z.baseline_reps,
        )
        if r is None:
            bench.add(
                Row(
                    HOT,
                    f"MLflow log_metric ({store}, {'sync' if sync else 'async'})",
                    None,
                    "µs",
                    note="not installed: pip install -e '.[bench]'",
                )
            )
            continue
        us = r["log_ns"] / 1e3
        note = f"{_x(us, log_us)} fleetlog run.log"
        if not sync:
            note += f"; its queue drains at {r['drain_points_per_second']:,.0f} points/s"
        bench.add(
            Row(HOT, f"MLflow log_metric ({store}, {'sync' if sync else 'async'}), per call", us, "µs", note=note)
        )
        if sync:
            per = r["log_batch_ns_per_point"] / 1e3
            bench.add(
                Row(
                    HOT,
                    f"MLflow log_batch(100 metrics) ({store}), per point",
                    per,
                    "µs",
                    note=f"{_x(per, many_us)} fleetlog log_metrics",
                )
            )
    r = _baseline(
        bench,
        "tensorboardx",
        "bench.hotpath.tensorboard_hot",
        root=str(root / "tb"),
        calls=z.tb_calls,
        reps=z.baseline_reps,
    )
    if r is not None:
        us = r["log_ns"] / 1e3
        bench.add(
            Row(
                HOT,
                "tensorboardX SummaryWriter.add_scalar, per call",
                us,
                "µs",
                note=f"{_x(us, log_us)} fleetlog run.log",
            )
        )


def _burst(bench: Bench) -> None:
    """Points per second one process can log without spilling: the sender's rate under a busy training thread."""
    b = in_subprocess(
        "bench.hotpath.fleetlog_burst",
        bootstrap=bench.kafka().bootstrap,
        topic_prefix=f"burst{uuid.uuid4().hex[:6]}",
        home=str(bench.root / "burst"),
        seconds=bench.sizes.burst_seconds,
    )
    bench.raw["burst"] = b
    kept_up = b["spilled_points"] == 0
    bench.add(
        Row(
            HOT,
            "points/s one process logs without spilling (sender's rate under a busy loop)",
            b["shipped_points_per_second"],
            "points/s",
            "nothing dropped",
            b["dropped"] == 0 and b["durable"],
            f"{'≥ (the sender kept up: the loop is the limit); ' if kept_up else ''}a loop doing only "
            f"log_metrics(100 metrics) for {b['seconds']:.0f} s logged {b['logged_points_per_second']:,.0f} points/s; "
            f"{b['spilled_points']:,} points spilled to the spool and replayed in order "
            f"(flush after the burst {b['drain_seconds']:.1f} s), {b['dropped']:,} dropped",
        )
    )


def _baseline_files(bench: Bench) -> tuple[Path, Path]:
    """MLflow and TensorBoard stores holding the loss series (written once, read by the query section)."""
    ml, tb = bench.root / "ml-storage", bench.root / "tb-storage"
    if "storage-mlflow" not in bench.raw.get("baselines", {}):
        _baseline(
            bench, "storage-mlflow", "bench.storage.mlflow_bytes", root=str(ml), points=bench.sizes.baseline_points
        )
    if "storage-tensorboard" not in bench.raw.get("baselines", {}):
        _baseline(
            bench,
            "storage-tensorboard",
            "bench.storage.tensorboard_bytes",
            root=str(tb),
            points=bench.sizes.baseline_points,
        )
    return ml, tb


def storage(bench: Bench) -> None:
    z = bench.sizes
    ch = in_subprocess("bench.storage.clickhouse_bytes", home=str(bench.root / "storage"), points=z.storage_points)
    bench.raw["storage"] = ch
    for series in (*REALISTIC, WORST):
        r = ch[series]
        cols = r["columns"]
        split = {c: cols.get(c, 0.0) for c in ("value", "ts", "step")}
        detail = (
            f"value {split['value']:.2f} + ts {split['ts']:.2f} + step {split['step']:.2f} B, the rest "
            f"(names, rank, marks, index) {r['bytes_per_point'] - sum(split.values()):.2f}"
            if sum(split.values())
            else "one compact part: no per-column sizes"
        )
        goal, limit = ("≤ 7 B", 7.0) if series == WORST else ("≤ 3.5 B", 3.5)
        bench.add(
            Row(
                STORE,
                f"ClickHouse bytes/point: {series}",
                r["bytes_per_point"],
                "B",
                goal,
                r["bytes_per_point"] <= limit,
                detail,
            )
        )
    mean = sum(ch[s]["bytes_per_point"] for s in REALISTIC) / len(REALISTIC)
    bench.add(
        Row(
            STORE,
            "ClickHouse bytes/point: mean of the realistic series",
            mean,
            "B",
            "≤ 3.5 B",
            mean <= 3.5,
            f"codecs: value {ch['codecs']['value']}, ts {ch['codecs']['ts']}, step {ch['codecs']['step']}",
        )
    )
    _baseline_files(bench)
    loss = ch[REALISTIC[0]]["bytes_per_point"]
    base = bench.raw.get("baselines", {})
    for store in ("sqlite", "file"):
        r = base.get("storage-mlflow", {}).get(store)
        if r:
            bench.add(
                Row(
                    STORE,
                    f"MLflow {store} store, loss series",
                    r["bytes_per_point"],
                    "B",
                    note=f"{_x(r['bytes_per_point'], loss)} ClickHouse; writes {r['write_points_per_second']:,.0f} "
                    f"points/s with log_batch",
                )
            )
    r = base.get("storage-tensorboard")
    if r:
        bench.add(
            Row(
                STORE,
                "TensorBoard event file, loss series",
                r["bytes_per_point"],
                "B",
                note=f"{_x(r['bytes_per_point'], loss)} ClickHouse",
            )
        )


def queries(bench: Bench) -> None:
    from fleetlog.config import Settings
    from fleetlog.localkafka import free_port
    from fleetlog.stack import SINK, LocalStack

    z, kafka = bench.sizes, bench.kafka()
    home = bench.root / "query"
    built = in_subprocess("bench.queries.build_store", timeout_seconds=900, home=str(home), big_points=z.big_points)
    settings = Settings.build(
        home=home,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"q{uuid.uuid4().hex[:6]}",
        http_port=free_port(),
        ui_port=free_port(),
    )
    stack = LocalStack(settings)
    stack.start(SINK, timeout_seconds=180)
    try:
        port = settings.store.http_port
        r = in_subprocess("bench.queries.read_queries", home=str(home), http_port=port, reps=z.query_reps)
    finally:
        stack.stop(SINK)
    bench.raw["queries"] = {"store": built, **r}
    where = f"{built['points'] / 1e6:.1f}M points, {built['runs']} runs"
    ms = 1e3
    chart = r["chart train/loss"]["p50"] * ms
    res = r["charts"]["train/loss"]["resolution"]
    bench.add(
        Row(
            QUERY,
            "chart of a 1M-point series (~1,000 points), p50",
            chart,
            "ms",
            "≤ 20 ms",
            chart <= 20,
            f"{res['source']} bucket {res['bucket']}, {r['charts']['train/loss']['points']} points, "
            f"planned from {res.get('extent', 'points')}; {where}",
        )
    )
    down = r["chart train/loss_norollup"]["p50"] * ms
    engine = r["chart engine (downsample SQL)"]["p50"] * ms
    bench.add(
        Row(
            QUERY,
            "same chart without rollups (server downsampling), p50",
            down,
            "ms",
            "≤ 20 ms",
            down <= 20,
            f"the downsample SQL alone through the endpoint {engine:.1f} ms",
        )
    )
    runs = r["runs table + summaries"]["p50"] * ms
    bench.add(
        Row(
            QUERY,
            f"runs table with loss summaries ({r['runs table rows']} runs), p50",
            runs,
            "ms",
            "≤ 50 ms",
            runs <= 50,
        )
    )
    latest = r["latest per metric, all runs"]["p50"] * ms
    raw_latest = r["latest per metric, all runs (raw points)"]["p50"] * ms
    bench.add(
        Row(
            QUERY,
            f"latest value per metric, all runs ({r['latest rows']} series), p50",
            latest,
            "ms",
            note=f"fleetlog.query.summaries(): from the processors' metric_summaries; with source='raw' "
            f"(every raw point) {raw_latest:,.0f} ms; the bare SQL on metric_summaries "
            f"{r['latest per metric, all runs (metric_summaries)']['p50'] * ms:.1f} ms",
        )
    )
    export = r["export 1M -> numpy (Arrow)"]["p50"]
    bench.add(
        Row(
            QUERY,
            f"export {r['export points']:,} points -> numpy, p50",
            export,
            "s",
            "≤ 0.3 s",
            export <= 0.3,
            f"-> pandas DataFrame {r['export 1M -> pandas']['p50']:.2f} s",
        )
    )
    ml, tb = _baseline_files(bench)
    n = r["export points"]
    m = _baseline(
        bench, "query-mlflow", "bench.queries.mlflow_history", db=str(ml / "sqlite" / "mlflow.db"), reps=z.baseline_reps
    )
    if m:
        est = m["seconds_per_point"] * n
        bench.add(
            Row(
                QUERY,
                f"MLflow get_metric_history (sqlite), {n:,} points",
                est,
                "s",
                note=f"extrapolated from {m['points']:,} points ({m['p50']:.2f} s); {_x(est, export)} fleetlog export",
            )
        )
    t = _baseline(bench, "query-tensorboard", "bench.queries.tensorboard_history", logdir=str(tb), reps=z.baseline_reps)
    if t:
        est = t["seconds_per_point"] * n
        bench.add(
            Row(
                QUERY,
                f"TensorBoard EventAccumulator, {n:,} points",
                est,
                "s",
                note=f"extrapolated from {t['points']:,} points ({t['p50']:.2f} s); {_x(est, export)} fleetlog export",
            )
        )
