"""``make bench``: every benchmark of issue 7, one table, one JSON file.

    python -m bench                 # everything (~10 minutes on 2 cores)
    python -m bench --quick         # small sizes, to check the harness (~3 minutes)
    python -m bench --only hotpath,storage

It starts what it needs itself (a broker on free ports, sinks and processors under a
temp ``FLEETLOG_HOME``) and removes it afterwards.  Each figure is a median of repeated
runs; every comparison is a ratio of figures measured in this same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report, sections
from bench._common import Row, load, machine
from fleetlog.localkafka import LocalKafka, free_port

SECTIONS = ("hotpath", "storage", "queries", "e2e", "scaleout")


@dataclass(frozen=True)
class Sizes:
    hot_calls: int = 200_000
    hot_reps: int = 7
    burst_seconds: float = 10.0
    mlflow_calls: int = 300
    mlflow_sqlite_calls: int = 60
    tb_calls: int = 3_000
    baseline_reps: int = 3
    storage_points: int = 1_000_000
    baseline_points: int = 20_000
    big_points: int = 1_000_000
    query_reps: int = 20
    producers: int = 2
    runs: int = 4
    steps: int = 50_000
    latency_seconds: float = 20.0
    profile_seconds: float = 15.0


QUICK = Sizes(
    hot_calls=50_000,
    hot_reps=3,
    burst_seconds=3.0,
    mlflow_calls=100,
    mlflow_sqlite_calls=20,
    tb_calls=1_000,
    storage_points=200_000,
    baseline_points=3_000,
    big_points=1_000_000,
    query_reps=5,
    runs=2,
    steps=5_000,
    latency_seconds=8.0,
    profile_seconds=5.0,
)


class Bench:
    def __init__(self, sizes: Sizes, root: Path) -> None:
        self.sizes = sizes
        self.root = root
        self.rows: list[Row] = []
        self.raw: dict[str, Any] = {}
        self.broker: LocalKafka | None = None

    def kafka(self) -> LocalKafka:
        if self.broker is None:
            self.broker = LocalKafka(state_dir=self.root / "kafka", port=free_port(), heap="-Xmx768m -Xms256m")
            self.broker.start()
        return self.broker

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)
        for r in rows:
            print(report.line(r), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    root = Path(tempfile.mkdtemp(prefix="fleetlog-bench-"))
    bench = Bench(QUICK if args.quick else Sizes(), root)
    started = time.time()
    before = load()
    failed: dict[str, str] = {}
    print(
        f"fleetlog bench: {', '.join(chosen)} ({'quick' if args.quick else 'full'}); load before {before}", flush=True
    )
    try:
        for name in chosen:
            t = time.time()
            try:
                getattr(sections, name)(bench)
            except Exception:
                failed[name] = traceback.format_exc()
                print(f"!! section {name} failed:\n{failed[name]}", file=sys.stderr, flush=True)
            bench.raw.setdefault("section_seconds", {})[name] = round(time.time() - t, 1)
    finally:
        if bench.broker is not None:
            bench.broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "id": uuid.uuid4().hex[:8],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "mode": "quick" if args.quick else "full",
        "sizes": bench.sizes.__dict__,
        "machine": machine(),
        "load_before": before,
        "load_after": load(),
        "rows": [r.as_dict() for r in bench.rows],
        "raw": bench.raw,
        "failed": failed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print()
    print(report.markdown(result))
    print(f"\nwritten {out} in {result['seconds']} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
