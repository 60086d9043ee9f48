"""Model versions, numbered by the sink: 1, 2, 3... per name, each exactly once, across any number of producers.

Why here: the SDK cannot number versions itself -- the processes registering one name share no
lock, and the store lags behind what they sent.  But every registration of a name is keyed by
the name (:mod:`fleetlog.events.models`), so all of them sit on one Kafka partition, in order,
and exactly one sink owns that partition at a time.  That sink is the only writer of the name's
versions, so it numbers them at insert time:

1. a registration whose id is already stored keeps its stored version and is not inserted again
   (a replay after a crash between insert and commit, or a message the producer sent twice);
2. a repeat of an id earlier in the same insert is dropped;
3. any other gets ``max(stored version of its name, versions given earlier in this insert) + 1``,
   in offset order.

Replaying a batch therefore yields the same numbers: the batches before it are stored, and its
own registrations are either all stored (rule 1) or none (the insert is one block, under the
batch's deduplication token).  The SDK call waits, bounded, for its registration id to appear
in the store and returns the version found there (:func:`fleetlog.models.register`).

The store must show the sink its own inserts at once: true of chDB and of a single server; on a
cluster ``models`` is replicated whole to every server (:mod:`fleetlog.store.cluster`) and the
sink reads the replica it writes to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa

__all__ = ["Lookup", "assign_versions", "store_lookup"]

# (registration ids, names) -> ({registration id: stored version}, {name: highest stored version})
Lookup = Callable[[list[str], list[str]], tuple[dict[str, int], dict[str, int]]]


def assign_versions(rows: pa.Table, lookup: Lookup) -> pa.Table:
    """``rows`` (``models`` rows in offset order, version 0) numbered; stored or repeated registrations left out."""
    ids = rows.column("registration_id").to_pylist()
    names = rows.column("name").to_pylist()
    stored, highest = lookup(sorted(set(ids)), sorted(set(names)))
    keep, versions, seen = [], [], set()
    for i, (reg, name) in enumerate(zip(ids, names, strict=True)):
        if reg in stored or reg in seen:
            continue
        seen.add(reg)
        highest[name] = highest.get(name, 0) + 1
        keep.append(i)
        versions.append(highest[name])
    kept = rows.take(pa.array(keep, pa.int64()))
    column = kept.schema.get_field_index("version")
    return kept.set_column(column, "version", pa.array(versions, pa.uint32()))


def store_lookup(query: Callable[[str, dict], Iterable[tuple]]) -> Lookup:
    """A :data:`Lookup` over ``query(sql, parameters) -> rows`` (the sink's store client)."""

    def lookup(ids: list[str], names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        stored = query(
            "SELECT registration_id, any(version) FROM models WHERE registration_id IN {ids:Array(String)} "
            "GROUP BY registration_id",
            {"ids": ids},
        )
        highest = query(
            "SELECT name, max(version) FROM models WHERE name IN {names:Array(String)} GROUP BY name",
            {"names": names},
        )
        return {r: int(v) for r, v in stored}, {n: int(v) for n, v in highest}

    return lookup
