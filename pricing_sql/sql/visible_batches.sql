-- The batches and amendments that active_events.sql reads, with Orb's backfills applied
-- (ingestion/backfills.py). A backfill is reflected from its close_time until it is
-- reverted: only then do the events of its batches count, as if their batches committed
-- at close_time, and, with replace_existing_events, it deprecates the events of its
-- customer (or every customer) and timeframe committed before close_time, as an
-- amendment made at close_time would (its deprecation_filter, when set, narrowing the
-- events it deprecates: active_events.py adds it to the anti join). Before close_time,
-- and after a revert, it changes nothing. So closing and reverting are each one record written, seen whole or not at all.
-- Tables: lake_batch_records     committed batch records (batch_id, committed_at)
--         lake_amendment_records amendment records
--         lake_backfills         backfill records
--         lake_backfill_batches  (batch_id, backfill_id) of batches ingested into a backfill
CREATE OR REPLACE TEMP VIEW reflected_backfills AS
SELECT *
FROM lake_backfills
WHERE reverted_at IS NULL AND close_time <= current_timestamp;

CREATE OR REPLACE TEMP VIEW lake_batches AS
SELECT r.batch_id, coalesce(f.close_time, r.committed_at) AS committed_at
FROM lake_batch_records AS r
LEFT JOIN lake_backfill_batches AS m ON m.batch_id = r.batch_id
LEFT JOIN reflected_backfills AS f ON f.backfill_id = m.backfill_id
WHERE m.batch_id IS NULL OR f.backfill_id IS NOT NULL;

CREATE OR REPLACE TEMP VIEW lake_amendments AS
SELECT amendment_id, created_at, customer_id, timeframe_start, timeframe_end,
    idempotency_key, reason, CAST(NULL AS VARCHAR) AS deprecation_filter
FROM lake_amendment_records
UNION ALL
SELECT backfill_id AS amendment_id, close_time AS created_at, customer_id, timeframe_start,
    timeframe_end, CAST(NULL AS VARCHAR) AS idempotency_key,
    'replaced by backfill ' || backfill_id AS reason, deprecation_filter
FROM reflected_backfills
WHERE replace_existing_events;
