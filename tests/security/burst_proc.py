"""A training loop that does nothing but log, for the burst test: ``python burst_proc.py RUN_ID SECONDS``.

It logs 100 metrics per ``log_metrics`` call, as fast as it can, for SECONDS; metric ``j``
at step ``s`` is ``j + s % 8``, small integers, so the sum ClickHouse computes is exact.
It prints what it logged and the SDK's own counters for the test to check.
"""

from __future__ import annotations

import json
import sys
import time

import fleetlog

METRICS = 100
NAMES = [f"layer{j:02d}/grad_norm" for j in range(METRICS)]
ROWS = [{name: float(j + r) for j, name in enumerate(NAMES)} for r in range(8)]
ROW_SUMS = [sum(row.values()) for row in ROWS]


def main(run_id: str, seconds: float) -> None:
    exp = fleetlog.Experiment("burst")
    run = exp.start_logging(run_id=run_id, telemetry=False)
    log_metrics, step, total = run.log_metrics, 0, 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            log_metrics(ROWS[step & 7], step=step)
            total += ROW_SUMS[step & 7]
            step += 1
    logged_seconds = time.perf_counter() - started
    durable = run.flush(timeout_seconds=600)
    stats = dict(exp._sender.stats) if exp._sender else {}
    run.complete()
    exp.close()
    print(
        json.dumps(
            {
                "points": step * METRICS,
                "sum": total,
                "dropped": run.dropped_points,
                "durable": durable,
                "logged_seconds": logged_seconds,
                "flush_seconds": time.perf_counter() - started - logged_seconds,
                "spooled_points": stats.get("spooled_points", 0),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
