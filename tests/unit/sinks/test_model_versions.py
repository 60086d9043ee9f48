"""The sink numbers model versions: 1, 2, 3... per name, each registration exactly once, the same on a replay."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pytest
from fleetlog.sinks._models import assign_versions
from fleetlog.sinks.base import Batch
from fleetlog.sinks.clickhouse import ClickHouseSink
from fleetlog.sinks.rows import Record, TableBuilder

from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode
from fleetlog.events.models import check_model_name, model_stream_id


def registration(name: str, offset: int, reg: str | None = None, *, session: str = "s1", key: str | None = None):
    """A ``model`` record as the SDK sends it (keyed by the model name)."""
    env = Envelope(
        kind="model",
        run_id=key or model_stream_id(name),
        source=Source(host="h"),
        session=session,
        seq=offset,
        sent_at=time.time(),
        body={
            "name": name,
            "registration_id": reg or uuid.uuid4().hex,
            "run_id": "run-1",
            "url": f"file:///artifacts/models/{name}/x",
            "path": "model.pkl",
            "tags": {"stage": "dev"},
            "size": 3,
            "time": time.time(),
        },
    )
    return Record("t.events", 0, offset, env.key, encode(env))


def rows(names_ids: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "name": [n for n, _ in names_ids],
            "version": pa.array([0] * len(names_ids), pa.uint32()),
            "registration_id": [r for _, r in names_ids],
        }
    )


def test_new_registrations_follow_the_highest_stored_version_per_name_in_offset_order() -> None:
    out = assign_versions(rows([("a", "r1"), ("b", "r2"), ("a", "r3"), ("a", "r4")]), lambda ids, names: ({}, {"a": 7}))
    assert out.to_pydict() == {
        "name": ["a", "b", "a", "a"],
        "version": [8, 1, 9, 10],
        "registration_id": ["r1", "r2", "r3", "r4"],
    }


def test_a_stored_or_repeated_registration_is_left_out_and_numbers_nothing() -> None:
    out = assign_versions(
        rows([("a", "old"), ("a", "r1"), ("a", "r1"), ("a", "r2")]), lambda ids, names: ({"old": 1}, {"a": 1})
    )
    assert out.column("registration_id").to_pylist() == ["r1", "r2"]
    assert out.column("version").to_pylist() == [2, 3]


def test_the_lookup_is_asked_only_about_the_batch_s_ids_and_names() -> None:
    asked = []
    assign_versions(rows([("b", "r2"), ("a", "r1")]), lambda ids, names: asked.append((ids, names)) or ({}, {}))
    assert asked == [(["r1", "r2"], ["a", "b"])]


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 256, None, 3])
def test_model_names_follow_azure_s_rule(bad) -> None:
    with pytest.raises(ValueError, match="model name"):
        check_model_name(bad)


def test_a_registration_keyed_by_another_name_is_a_dead_letter() -> None:
    builder = TableBuilder(sdk_topics=("t.events",))
    builder.add([registration("a", 0, key=model_stream_id("b"))])
    [reason] = builder.tables()["dead_letters"].column("reason").to_pylist()
    assert "came keyed" in reason


@pytest.fixture
def sink(store, tmp_path) -> ClickHouseSink:
    return ClickHouseSink(Settings.build(home=tmp_path, topic_prefix="t"), store.client)


def stored(store) -> list[tuple[str, int, str]]:
    query = "SELECT name, version, registration_id FROM models ORDER BY name, version"
    return [(n, int(v), r) for n, v, r in store.owner.query(query).result_rows]


def test_the_sink_numbers_versions_and_a_replayed_batch_keeps_them(store, sink: ClickHouseSink) -> None:
    first = [registration("m", 0, "r0"), registration("m", 1, "r1"), registration("other", 2, "o0")]
    sink.write([Batch(first)])
    sink.write([Batch(first)])  # killed between insert and commit: the same cut comes again
    second = [registration("m", 3, "r2"), registration("m", 4, "r0", session="s2")]  # r0 sent twice by the SDK
    sink.write([Batch(second)])
    assert stored(store) == [("m", 1, "r0"), ("m", 2, "r1"), ("m", 3, "r2"), ("other", 1, "o0")]


def test_a_new_sink_owner_continues_from_the_stored_versions(store, sink: ClickHouseSink, tmp_path) -> None:
    sink.write([Batch([registration("m", 0, "r0")])])
    successor = ClickHouseSink(Settings.build(home=tmp_path, topic_prefix="t"), store.client)  # after a rebalance
    successor.write([Batch([registration("m", 1, "r1")])])
    assert stored(store) == [("m", 1, "r0"), ("m", 2, "r1")]


def test_a_replay_the_sequence_numbers_cannot_catch_keeps_the_versions(store, sink: ClickHouseSink, tmp_path) -> None:
    """Killed after the models insert but before producer_streams: only the registration ids tell the repeat."""
    batch = [registration("m", 0, "r0"), registration("m", 1, "r1")]
    sink.write([Batch(batch)])
    store.owner.command("TRUNCATE TABLE producer_streams")
    replaying = ClickHouseSink(Settings.build(home=tmp_path, topic_prefix="t"), store.client)
    replaying.write([Batch([*batch, registration("m", 2, "r2")])])  # a new cut, so no token spares the insert
    assert replaying.stats["duplicates_dropped"] == 0
    assert stored(store) == [("m", 1, "r0"), ("m", 2, "r1"), ("m", 3, "r2")]
