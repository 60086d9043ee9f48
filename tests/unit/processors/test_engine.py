"""RunEngine end to end over a dict store: replays are exact, runs end, get lost, come back, are forgotten."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine
from fleetlog.processors.core.state import RunState, key
from processor_helpers import apply, columns, metrics

from fleetlog.events import Envelope, Source

CFG = ProcessorConfig(resolutions=(10, 100), lost_after_seconds=30, rank_timeout_seconds=5, state_retention_seconds=100)


def stream(run="r", steps=400, chunk=50, world=1):
    """(offset, envelope) messages: two metrics per step, ranks interleaved, like a partition."""
    rng = np.random.default_rng(1)
    out, offset = [], 0
    for start in range(0, steps, chunk):
        for rank in range(world):
            step = np.arange(start, min(start + chunk, steps))
            n = len(step)
            value = np.r_[1 + 0.01 * rng.standard_normal(n), step / steps]
            idx = np.r_[np.zeros(n), np.ones(n)]
            out.append((offset, metrics(run, ["loss", "acc"], idx, np.r_[step, step], value, rank=rank, world=world)))
            offset += 1
    return out


def status(run="r", value="Completed", sent=2.0):
    return Envelope(
        kind="run", run_id=run, source=Source(), sent_at=sent, body={"status": value, "start": 1.0, "end": sent}
    )


def run_all(engine, batches, store, now=1000.0, events=()):
    rows: dict[str, list] = {}
    for i, batch in enumerate(batches):
        out = engine.process("r", 3, batch, list(events) if i == len(batches) - 1 else [], now=now, get=store.get)
        apply(store, out.writes)
        for table, parts in out.rows.items():
            rows.setdefault(table, []).extend(parts)
    return rows


def newest(rows, keys):
    df = columns(rows)
    return df.sort_values("version", kind="stable").groupby(keys).last().sort_index()


def test_replaying_a_batch_after_losing_some_state_writes_changes_nothing():
    msgs = stream()
    clean_store: dict = {}
    clean = run_all(RunEngine(CFG), [msgs[:3], msgs[3:]], clean_store, events=[(0, status())])

    store: dict = {}
    engine = RunEngine(CFG)
    first = engine.process("r", 3, msgs[:5], [], now=1000.0, get=store.get)
    # Crash: the run's own key and one series made it to the changelog, the other series did not.
    lost = key("series", "r", "acc", 0)
    apply(store, {k: v for k, v in first.writes.items() if k != lost})
    rows = {t: list(p) for t, p in first.rows.items()}
    for batch, events in ((msgs[:5], []), (msgs[5:], [(0, status())])):  # the replay starts at the last commit
        out = engine.process("r", 3, batch, events, now=1000.0, get=store.get)
        apply(store, out.writes)
        for table, parts in out.rows.items():
            rows.setdefault(table, []).extend(parts)

    keys = ["metric", "rank", "resolution", "bucket"]
    pd.testing.assert_frame_equal(newest(rows["metric_rollups"], keys), newest(clean["metric_rollups"], keys))
    summary = ["metric", "rank"]
    pd.testing.assert_frame_equal(newest(rows["metric_summaries"], summary), newest(clean["metric_summaries"], summary))
    assert RunState.decode(store[key("run", "r")]).points == RunState.decode(clean_store[key("run", "r")]).points == 800


def test_completion_flushes_open_buckets_and_summaries_follow_the_points():
    store: dict = {}
    rows = run_all(RunEngine(CFG), [stream(steps=95)], store, events=[(0, status())])
    rollups = newest(rows["metric_rollups"], ["metric", "rank", "resolution", "bucket"])
    assert rollups.loc[("loss", 0, 100, 0), "count"] == 95  # the open bucket, flushed at the end
    summary = newest(rows["metric_summaries"], ["metric", "rank"])
    assert summary.loc[("acc", 0), "last_step"] == 94 and summary.loc[("acc", 0), "count"] == 95
    run = columns(rows["run_summaries"]).iloc[-1]
    assert run["status"] == "Completed" and run["points"] == 190


def test_a_silent_run_is_lost_flushed_and_alerted_then_revived_by_data_and_finally_forgotten():
    engine, store = RunEngine(CFG), {}
    msgs = stream(steps=55)
    out = engine.process("r", 3, msgs, [], now=1000.0, get=store.get)
    apply(store, out.writes)
    assert out.due == 1000.0 + 30
    assert engine.tick("r", now=1010.0, get=store.get).rows == {}  # not yet
    lost = engine.tick("r", now=1031.0, get=store.get)
    apply(store, lost.writes)
    assert columns(lost.rows["run_summaries"])["status"].tolist() == ["Lost"]
    assert columns(lost.rows["alerts"])["rule"].tolist() == ["lost"]
    assert 55 in columns(lost.rows["metric_rollups"])["count"].tolist()  # open buckets flushed

    back = engine.process("r", 3, [(99, metrics("r", ["loss"], [0], [60], [1.0]))], [], now=1040.0, get=store.get)
    apply(store, back.writes)
    assert columns(back.rows["run_summaries"])["status"].tolist() == ["Running"]

    apply(store, engine.process("r", 3, [], [(7, status(sent=3.0))], now=1041.0, get=store.get).writes)
    assert engine.tick("r", now=1100.0, get=store.get).writes == {}
    gone = engine.tick("r", now=1142.0, get=store.get)
    apply(store, gone.writes)
    assert store == {} and gone.due is None


def test_events_apply_once_and_alert_rules_come_from_rows_events():
    engine, store = RunEngine(CFG), {}
    rule = Envelope(
        kind="rows",
        run_id="r",
        body={"table": "alert_rules", "columns": {"run_id": ["r"], "metric": ["acc"], "above": [0.5], "below": [None]}},
    )
    out = engine.process("r", 3, stream(steps=100), [(4, rule)], now=1.0, get=store.get)
    apply(store, out.writes)
    alerts = columns(out.rows["alerts"])
    assert alerts[["metric", "rule", "step", "threshold"]].values.tolist() == [["acc", "above", 51, 0.5]]
    again = engine.process("r", 3, [], [(4, status("r", "Failed"))], now=2.0, get=store.get)
    assert columns(again.rows["run_summaries"])["status"].tolist() == ["Running"]  # offset 4 already applied


def test_ranks_are_aggregated_per_step_and_rollups_kept_per_rank():
    store: dict = {}
    rows = run_all(RunEngine(CFG), [stream(steps=100, world=2)], store)
    ranks = columns(rows["rank_aggregates"])
    assert len(ranks) == 200 and (ranks["complete"] == 1).all() and (ranks["ranks"] == 2).all()
    rollups = columns(rows["metric_rollups"])
    assert set(rollups["rank"]) == {0, 1}


def test_state_from_other_resolutions_is_adapted_not_misread():
    store: dict = {}
    run_all(RunEngine(CFG), [stream(steps=100)], store)
    wider = RunEngine(ProcessorConfig(resolutions=(10, 50)))
    out = wider.process(
        "r", 3, [(100, metrics("r", ["loss"], [0], [100], [1.0]))], [(0, status())], now=1.0, get=store.get
    )
    emitted = columns(out.rows["metric_rollups"])
    assert set(emitted["resolution"]) == {10, 50}
    assert emitted[emitted["resolution"] == 50]["count"].tolist() == [1]  # only loss has a point at 50
