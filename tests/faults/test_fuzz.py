"""The wire decoder against 100,000 hostile messages: only the typed error, quickly, in bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from fleetlog.sinks.rows import Record, TableBuilder

from fleetlog.events import InvalidEvent, decode

from .fuzzing import cases

FUZZ_CASES = 100_000


def test_decoder_survives_100k_mutated_messages_with_only_invalid_event():
    tracemalloc.start()
    rejected = accepted = 0
    slowest = 0.0
    for data in cases(seed=2026, count=FUZZ_CASES):
        t = time.perf_counter()
        try:
            decode(data)
            accepted += 1
        except InvalidEvent as exc:
            assert exc.reason
            rejected += 1
        slowest = max(slowest, time.perf_counter() - t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rejected + accepted == FUZZ_CASES
    assert rejected > FUZZ_CASES // 2  # the mutations really do break most messages
    assert slowest < 0.5, f"one message took {slowest:.3f}s to decode"
    assert peak < 64 << 20, f"decoding peaked at {peak >> 20} MiB"


@pytest.mark.parametrize(
    "bomb",
    [
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion elements
        b"\xdf\xff\xff\xff\xff",  # a map claiming 4 billion entries
        b"\xc6\xff\xff\xff\xff" + b"x" * 10,  # a 4 GiB bin with 10 bytes behind it
        b"\x91" * 5000 + b"\x01",  # 5,000 nested one-element arrays
    ],
)
def test_size_claims_and_deep_nesting_are_rejected_without_allocating(bomb):
    with pytest.raises(InvalidEvent):
        decode(bomb)


def test_the_sink_turns_every_rejected_message_into_a_dead_letter_with_its_reason():
    records = [Record("t.metrics", 0, i, None, data) for i, data in enumerate(cases(seed=7, count=5_000))]
    builder = TableBuilder()
    builder.add(records)
    tables = builder.tables()
    dead = tables.get("dead_letters")
    invalid = 0
    for r in records:
        try:
            decode(r.value)
        except InvalidEvent:
            invalid += 1
    assert dead is not None and dead.num_rows >= invalid
    assert all(dead.column("reason").to_pylist())
    assert builder.records == 5_000
