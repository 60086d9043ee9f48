"""Sinks: what takes the records of Kafka's topics into the store, exactly once.

* :mod:`.base` -- what a sink is: a :class:`~.base.Batch`, the :class:`~.base.Sink` contract,
  :class:`~.base.SinkBackpressure`, and the commit protocol;
* :mod:`.clickhouse` -- the ClickHouse sink (intents, column inserts, dead letters);
* :mod:`.worker` -- the Kafka side: poll, cut (:mod:`.batching`), fence, write, commit, pause;
* :mod:`.rows` -- records into column tables (pure); :mod:`.service` -- ``fleetlog sink``.

The store itself (connection, schema, the embedded ClickHouse endpoint) is :mod:`fleetlog.store`.
"""
