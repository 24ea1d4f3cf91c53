-- Reject the duplicate idempotency keys of a checked batch, among the events that
-- passed every other check: a key that counts in an earlier batch, and a key seen
-- earlier in the batch itself (a batch is one file: its first occurrence, lowest row,
-- is kept). The first reason wins. Only the few duplicate rows are updated; finding
-- them in check_batch.sql made DuckDB keep every event for a second pass.
-- Tables: checked_batch  the batch, as check_batch.sql left it
--         existing_keys  (customer_id, idempotency_key, batch_id) of the events that
--                        count in the earlier batches that may share a key
--                        (key_candidates.sql); keys are unique across batches
WITH repeats AS (
    SELECT customer_id, idempotency_key, min(source_row) AS first_row
    FROM checked_batch
    WHERE reject_reason IS NULL
    GROUP BY ALL
    HAVING count(*) > 1
),
duplicates AS (
    SELECT
        c.source_row,
        coalesce('already ingested in batch ' || e.batch_id,
                 'first seen at ' || c.source_file || ':' || r.first_row) AS detail
    FROM checked_batch AS c
    LEFT JOIN existing_keys AS e
        ON e.customer_id = c.customer_id AND e.idempotency_key = c.idempotency_key
    LEFT JOIN repeats AS r
        ON r.customer_id = c.customer_id AND r.idempotency_key = c.idempotency_key
    WHERE c.reject_reason IS NULL AND (e.batch_id IS NOT NULL OR r.first_row <> c.source_row)
)
UPDATE checked_batch
SET reject_reason = 'duplicate idempotency_key', reject_detail = duplicates.detail
FROM duplicates
WHERE checked_batch.source_row = duplicates.source_row
