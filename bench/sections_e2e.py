"""The whole-pipeline sections: throughput and latency (e2e) and scale-out, on stacks of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench._common import Row

if TYPE_CHECKING:
    from bench.__main__ import Bench

__all__ = ["e2e", "scaleout"]

E2E, LAT, SCALE = "2 throughput", "3 latency", "6 scale-out"


def _sink_note(t: dict[str, Any], stage: str) -> str:
    """For a sink: how many ClickHouse inserts it made, and the rows it wrote besides raw points."""
    stats = t.get("sink_stats", {}).get(stage)
    if not stats:
        return ""
    seconds = t["all_stages_seconds"] or t["landed_seconds"]
    derived = sum(v for k, v in stats.items() if k.startswith("rows:") and k != "rows:metric_points")
    return (
        f"; {stats.get('inserts', 0):,} inserts ({stats.get('inserts', 0) / seconds:.0f}/s) in "
        f"{stats.get('flush_rounds', 0):,} flushes; {derived:,} rows besides the raw points"
    )


def _fleet(bench: Bench, sinks: int, processors: int, *, with_latency: bool) -> dict[str, Any]:
    from bench import e2e as run

    z, kafka = bench.sizes, bench.kafka()
    out: dict[str, Any] = {}
    with run.deploy(bench.root, kafka.bootstrap, kafka.status().pid, sinks=sinks, processors=processors) as dep:
        out["throughput"] = run.throughput(
            dep,
            bench.root,
            producers=z.producers,
            runs=z.runs,
            steps=z.steps,
            profile_seconds=z.profile_seconds if with_latency else 0,
        )
    if with_latency:
        # A deployment of its own: half the maximum load in a steady state, not the throughput run's
        # 12M points still being merged by the store in the background.
        t = out["throughput"]
        rate = 0.5 * (t["all_stages_points_per_second"] or t["end_to_end_points_per_second"])
        with run.deploy(bench.root, kafka.bootstrap, kafka.status().pid, sinks=sinks, processors=processors) as dep:
            out["latency"] = run.latency(
                dep, bench.root, rate=rate, producers=z.producers, runs=z.runs, seconds=z.latency_seconds
            )
    return out


def e2e(bench: Bench) -> None:
    z = bench.sizes
    out = _fleet(bench, 1, 1, with_latency=True)
    bench.raw["e2e"] = out
    t = out["throughput"]
    sustained = t["all_stages_points_per_second"] or 0.0
    fleet = f"{z.producers} ranks x {z.runs} runs x 30 metrics x {z.steps:,} steps"
    bench.add(
        Row(
            E2E,
            "sustained points/s, fully landed (raw points, rollups and every derived row in ClickHouse)",
            sustained,
            "points/s",
            "≥ 1,000,000/s",
            sustained >= 1_000_000,
            f"{fleet}: {t['expected']:,} points in {t['all_stages_seconds'] or float('nan'):.0f} s; "
            f"1 sink + 1 processor",
        ),
        Row(
            E2E,
            "raw points/s landed (first log to last raw point counted)",
            t["end_to_end_points_per_second"],
            "points/s",
            note=f"{t['landed_seconds']:.0f} s; slope of the landed count over the middle 80%: "
            f"{t['steady_points_per_second'] or float('nan'):,.0f}/s; the processor lags behind and finishes later",
        ),
        Row(
            E2E,
            "SDK logging rate of the same fleet (log_metrics)",
            t["log_points_per_second"],
            "points/s",
            note=f"{t['dropped_by_sdk']} dropped, waited {t['producer_waited_seconds']:.1f} s for the sender",
        ),
        Row(
            E2E,
            "landed exactly once (count = unique = logged)",
            t["landed"],
            "points",
            "exact",
            t["exact"],
            f"unique {t['unique']:,}, logged {t['expected']:,}",
        ),
    )
    for stage in sorted(t["cpu_us_per_point"], key=lambda k: -t["cpu_us_per_point"][k]):
        bench.add(
            Row(
                E2E,
                f"CPU per point: {stage}",
                t["cpu_us_per_point"][stage],
                "µs",
                note=f"{t['cpu_cores'][stage]:.2f} cores from the first log until every stage was done"
                + _sink_note(t, stage),
            )
        )

    lat = out["latency"]
    load = (
        f"under {lat['achieved_rate']:,.0f} points/s (half the fully-landed rate) for {z.latency_seconds:.0f} s, "
        "on a fresh stack; "
        f"polled every {lat['poll_seconds']} s"
    )
    bench.add(
        Row(LAT, "log -> raw point queryable, p50", lat["raw_p50"], "s", note=load),
        Row(
            LAT,
            "log -> raw point queryable, p99",
            lat["raw_p99"],
            "s",
            "≤ 2 s",
            lat["raw_p99"] <= 2.0,
            f"{lat['raw_seen']} of {lat['probe_points']} probe points seen",
        ),
        Row(
            LAT,
            "log -> rollup queryable, p50 / p99",
            lat["rollup_p50"],
            "s",
            note=f"p99 {lat['rollup_p99'] or float('nan'):.2f} s, {lat['rollup_seen']} buckets of 10 steps",
        ),
    )


def scaleout(bench: Bench) -> None:
    # Back to back, same workload, no profiler: the machine's load drifts between sections.
    base = _fleet(bench, 1, 1, with_latency=False)["throughput"]
    two = _fleet(bench, 2, 2, with_latency=False)["throughput"]
    bench.raw["scaleout"] = {"one": base, "two": two}
    rate = lambda t: t["all_stages_points_per_second"] or 0.0  # noqa: E731
    bench.add(
        Row(
            SCALE,
            "2 sinks + 2 processors, one consumer group: fully landed points/s",
            rate(two),
            "points/s",
            note=f"{rate(two) / rate(base):.2f}x 1 sink + 1 processor ({rate(base):,.0f}/s, run just before; load "
            f"{base['load1']} then {two['load1']}); the second sink writes through the first one's endpoint "
            "(one store, as with a ClickHouse server)",
        ),
        Row(
            SCALE,
            "2 + 2: landed exactly once",
            two["landed"],
            "points",
            "exact",
            two["exact"],
            f"unique {two['unique']:,}, logged {two['expected']:,}; 1 + 1 exact: {base['exact']}",
        ),
    )
