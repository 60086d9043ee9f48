"""Sinks: what takes the records of Kafka's topics into the store, exactly once.

The store itself (connection, schema, the embedded ClickHouse endpoint) is :mod:`fleetlog.store`.
"""
