"""The store: ClickHouse (a server or cluster, or chDB embedded) behind one clickhouse-connect ``Client``.

- :mod:`.client`: ``connect``/``open_store`` for either backend, migrations, retention, and the one
  classification of ClickHouse errors into retry / dead letter / operator (``classify``);
- :mod:`.schema`, :mod:`.schema_derived`: the tables, their migrations and the names the read side uses;
- :mod:`.cluster`: the same schema as replicated + distributed DDL for a ClickHouse cluster;
- :mod:`.endpoint`: ClickHouse's HTTP interface over an embedded chDB store, served by the process
  that owns it (credentials, the SQL sandbox, browser and client limits);
- :mod:`.serve`, :mod:`.cli`: ``fleetlog store serve|migrate|ddl|credentials``.

Sinks write through it, the read side reads through it; it imports neither.
"""

__all__: list[str] = []
