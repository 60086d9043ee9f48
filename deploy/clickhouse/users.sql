-- fleetlog's users on a ClickHouse server or cluster: a writer for the sinks, a reader for everyone else.
-- Replace both passwords, then run once as an administrator:
--   clickhouse-client --multiquery < deploy/clickhouse/users.sql
-- On a single server, delete every "ON CLUSTER '{cluster}'".

-- Sinks insert; every insert carries insert_deduplication_token, and on a cluster the insert must reach the
-- shards before the sink commits its Kafka offsets (distributed_foreground_insert), so a replay deduplicates.
CREATE SETTINGS PROFILE IF NOT EXISTS fleetlog_writer ON CLUSTER '{cluster}'
    SETTINGS distributed_foreground_insert = 1, async_insert = 0;

CREATE USER IF NOT EXISTS fleetlog_writer ON CLUSTER '{cluster}'
    IDENTIFIED WITH sha256_password BY 'change-me-writer'
    SETTINGS PROFILE 'fleetlog_writer';

-- SELECT: the sink reads its intents (sink_batches) and producer sequence numbers back.
-- CREATE/ALTER are for a single server, where the first sink creates the database and tables, later ones
-- migrate them, and every start applies the retention settings (ALTER ... MODIFY TTL). On a cluster the
-- administrator runs cluster.sql, the sink finds every migration recorded and leaves TTL alone: grant
-- SELECT, INSERT only.
GRANT ON CLUSTER '{cluster}' SELECT, INSERT, CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER TABLE
    ON fleetlog.* TO fleetlog_writer;

-- Readers: fleetlog's query API, the CLI, the dashboard, Grafana. readonly = 2 allows per-query settings
-- (clickhouse-connect sends some) but no writes and no DDL.
CREATE SETTINGS PROFILE IF NOT EXISTS fleetlog_reader ON CLUSTER '{cluster}'
    SETTINGS readonly = 2, max_execution_time = 60, max_result_rows = 10000000;

CREATE USER IF NOT EXISTS fleetlog_reader ON CLUSTER '{cluster}'
    IDENTIFIED WITH sha256_password BY 'change-me-reader'
    SETTINGS PROFILE 'fleetlog_reader';

GRANT ON CLUSTER '{cluster}' SELECT ON fleetlog.* TO fleetlog_reader;
