-- The events that count: every ingested event except those an amendment deprecated.
-- Tables: lake_events      event files (all of them, or the days being rated)
--         lake_batches     batches whose events count (committed_at: since when; a
--                          backfilled batch's is its backfill's close, visible_batches.sql)
--         lake_amendments  amendment records, and backfills that replace events
-- An amendment deprecates the events that existed when it was made (their batch
-- committed before it) for its customer (or every customer), in its timeframe
-- [timeframe_start, timeframe_end), and, for a single-event amendment, with its key.
-- Events ingested later, such as its replacement events, are not touched by it.
-- Nothing is deleted: deprecated events stay in the lake, and the amendment says why.
-- (An ANTI JOIN rather than NOT EXISTS: DuckDB decorrelates NOT EXISTS with a
-- grouping over every event, which costs minutes at 100M events; amendments are few.)
CREATE OR REPLACE TEMP VIEW active_events AS
SELECT e.*
FROM lake_events AS e
JOIN lake_batches AS b ON b.batch_id = e.batch_id
ANTI JOIN lake_amendments AS a
    ON a.created_at > b.committed_at
    AND (a.customer_id IS NULL OR a.customer_id = e.customer_id)
    AND e."timestamp" >= a.timeframe_start
    AND e."timestamp" < a.timeframe_end
    AND (a.idempotency_key IS NULL OR a.idempotency_key = e.idempotency_key)
