"""Which codecs to use for metric_points: bytes per point per column, measured in chDB.

Run: ``python -m bench.codecs`` (in-process chDB, a temp store).  The schema's
choices (fleetlog/store/schema.py) come from this table.
"""

from __future__ import annotations

import sys
import tempfile

import clickhouse_connect
import numpy as np
import pyarrow as pa

from bench.series import SERIES

N = 1_000_000
VALUE_CODECS = [
    "ZSTD(1)",
    "Gorilla, ZSTD(1)",
    "FPC, ZSTD(1)",
    "Delta, ZSTD(1)",
    "Delta, ZSTD(3)",
    "FPC, ZSTD(3)",
    "Gorilla, ZSTD(3)",
]
STEP_CODECS = ["ZSTD(1)", "Delta, ZSTD(1)", "DoubleDelta, ZSTD(1)"]
TS_CODECS = ["ZSTD(1)", "Delta, ZSTD(1)", "DoubleDelta, ZSTD(1)"]


def measure(client, name: str, column_type: str, codec: str, data: pa.Array) -> float:
    table = f"c_{abs(hash((name, codec))) % 10**9}"
    client.command(f"DROP TABLE IF EXISTS {table}")
    client.command(f"CREATE TABLE {table} (k UInt32, x {column_type} CODEC({codec})) ENGINE = MergeTree ORDER BY k")
    client.insert_arrow(table, pa.table({"k": pa.array(np.arange(len(data), dtype=np.uint32)), "x": data}))
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    nbytes = client.query(
        "SELECT sum(column_data_compressed_bytes) FROM system.parts_columns "
        "WHERE table = {t:String} AND column = 'x' AND active",
        parameters={"t": table},
    ).result_rows[0][0]
    client.command(f"DROP TABLE {table}")
    return nbytes / len(data)


def main() -> dict[str, dict[str, float]]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tempfile.mkdtemp(prefix='fleetlog-codecs-')}")
    results: dict[str, dict[str, float]] = {}
    for series, make in SERIES.items():
        values = pa.array(make(N))
        results[f"value: {series}"] = {c: measure(client, series, "Float64", c, values) for c in VALUE_CODECS}
    steps = pa.array(np.arange(N, dtype=np.int64))
    results["step"] = {c: measure(client, "step", "Int64", c, steps) for c in STEP_CODECS}
    # one point every ~50 ms with jitter, as a training loop logs
    ts = 1_700_000_000_000 + np.cumsum(np.random.default_rng(0).integers(40, 60, N))
    results["ts (ms)"] = {
        c: measure(client, "ts", "DateTime64(3, 'UTC')", c, pa.array(ts.view("datetime64[ms]"))) for c in TS_CODECS
    }
    for column, row in results.items():
        best = min(row, key=row.get)
        cells = "  ".join(f"{c}: {b:.3f}" for c, b in row.items())
        print(f"{column:32s} best {best:22s} | {cells}", file=sys.stdout)
    return results


if __name__ == "__main__":
    main()
