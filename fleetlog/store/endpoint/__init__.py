"""ClickHouse's HTTP interface over an embedded chDB store: see :mod:`.server`."""

from fleetlog.store.endpoint.server import HttpEndpoint, QueryLimits

__all__ = ["HttpEndpoint", "QueryLimits"]
