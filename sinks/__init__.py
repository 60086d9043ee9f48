"""ClickHouse writers: the store boundary, schema, sink worker and HTTP endpoint."""
