"""kill -9 the sink again and again while data streams in: every point lands exactly once.

The sink owns the embedded store, so each SIGKILL also kills the store's only process in
the middle of whatever it was doing (intent, insert, commit). The known data carries no
producer session, so nothing but the commit protocol keeps the counts exact.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time

from polling import wait_for
from sink_backends import KnownData, assert_exactly_once, backend_settings, lag, produce, wait_drained

from fleetlog.stack import SINK, LocalStack

KILLS = 12


def test_sigkill_during_inserts_loses_and_duplicates_nothing(settings):
    # Small batches keep the sink inside intent -> insert -> commit most of the time it runs.
    s = backend_settings(
        settings, "chdb", sink_batch_rows=2_000, sink_batch_seconds=0.1, sink_instance_id="crash-test-sink"
    )
    data = KnownData(runs=4, records=250, points=2_000, prefix="crash")  # 2M points over 4 partitions
    rng = random.Random(int(time.time()))
    stack = LocalStack(s)
    hurry = threading.Event()  # data keeps streaming for as long as the kills go on
    producer = threading.Thread(target=lambda: asyncio.run(produce(s, data, seconds=20, hurry=hurry)), daemon=True)
    producer.start()
    behind = []
    try:
        for _ in range(KILLS):
            stack.start(SINK)
            time.sleep(rng.uniform(0.3, 2.0))  # the test's subject: a kill at a random moment of the sink's work
            pid = stack.pid(SINK)
            assert pid is not None, "the sink died before it was killed"
            behind.append(lag(s))
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: stack.pid(SINK) is None, 10, "the killed sink to be gone", every=0.05)
        hurry.set()
        producer.join(timeout=120)
        stack.start(SINK)
        wait_drained(s)
        assert_exactly_once(s, data)
    finally:
        stack.stop(SINK)
    # Each restart that found a batch its killed predecessor had recorded but not committed says so.
    replays = stack.log_file(SINK).read_text(errors="replace").count(" recorded batch(es)")
    print(
        f"\ncrash test: {KILLS} SIGKILLs, lag at each kill {behind}, {data.runs * data.records * data.points:,} points "
        f"checked, 0 lost, 0 duplicated; partitions replayed from a recorded intent after a kill: {replays}"
    )
    assert sum(1 for n in behind if n > 0) >= KILLS // 2, f"too few kills hit a sink with work to do: {behind}"
    assert replays >= 1, "no kill landed between an intent and its commit: the replay path was not exercised"
