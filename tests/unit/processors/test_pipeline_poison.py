"""No record stops the processors, and each bad message is exactly one dead letter across both stages.

The processors and the sink read the same SDK topics.  What the sink refuses (it stores nothing
of it) it dead-letters itself, so the processors only count it; what only the processors refuse,
they dead-letter.  Running both stages over one batch checks that rule, message by message.
"""

from __future__ import annotations

from collections import Counter

from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine
from fleetlog.processors.pipeline import Pipeline, Record
from fleetlog.sinks.rows import TableBuilder
from poison import deep_record, forged_alert, forged_rollup, huge_declared_length, wide_deep_record
from test_pipeline import metric_record

from fleetlog.events import Envelope, Source, encode

SDK_TOPICS = ("t.metrics", "t.events")


def pipeline() -> Pipeline:
    return Pipeline(
        RunEngine(ProcessorConfig(resolutions=(10, 100))), metrics_topic="t.metrics", events_topic="t.events"
    )


def poison_batch() -> list[Record]:
    """Valid points, then every kind of poison message, each followed by more valid points."""
    rank_outside_world = Envelope(kind="tags", run_id="odd", source=Source(rank=5, world_size=2), body={"a": "b"})
    bad = [
        Record("t.events", 0, 0, b"bad", deep_record("bad")),
        Record("t.events", 0, 0, b"bad", wide_deep_record("bad")),
        Record("t.events", 0, 0, b"bad", huge_declared_length("bad")),
        Record("t.events", 0, 0, b"bad", forged_rollup("bad")),
        Record("t.metrics", 0, 0, b"bad", forged_alert("bad")),
        Record("t.events", 0, 0, b"bad", b""),
        Record("t.events", 0, 0, b"odd", encode(rank_outside_world)),  # only the processors refuse this one
    ]
    batch = [metric_record("good", offset=0, n=50)]
    for rec in bad:
        offset = len(batch)
        batch.append(Record(rec.topic, 0, offset, rec.key, rec.value))
        batch.append(metric_record("good", offset=offset + 1, n=50))
    return batch


def test_each_poison_message_is_one_dead_letter_of_one_stage_and_the_points_are_processed() -> None:
    batch = poison_batch()
    result = pipeline().handle(batch, get={}.get, now=5.0)
    sink = TableBuilder(sdk_topics=SDK_TOPICS)
    sink.add(batch)
    sink_dead = sink.tables()["dead_letters"].column("offset").to_pylist()
    stages = Counter(sink_dead + [d.offset for d in result.dead_letters])
    assert sorted(stages) == [1, 3, 5, 7, 9, 11, 13] and set(stages.values()) == {1}
    [dead] = result.dead_letters
    assert dead.offset == 13 and "does not fit world size" in dead.reason
    assert result.stats["refused_by_sink"] == 6
    assert [r.run_id for r in result.runs] == ["good"] and result.stats["points"] == 8 * 50


def test_an_error_nobody_foresaw_in_decoding_is_left_to_the_sink_not_raised(monkeypatch) -> None:
    """Decoding that raises anything (here: a bug that let msgpack's own error through) skips the record."""

    def broken(data: bytes) -> Envelope:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("fleetlog.events.records.decode", broken)  # what decode_record calls
    result = pipeline().handle([Record("t.events", 0, 0, b"r", deep_record("r"))], get={}.get, now=5.0)
    assert result.stats["refused_by_sink"] == 1 and not result.dead_letters and not result.runs
