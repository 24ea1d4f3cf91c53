-- The duplicate idempotency keys of a checked batch, among the events that passed
-- every other check: a key that counts in an earlier batch, and a key seen earlier in
-- the batch itself (a batch is one file: its first occurrence, lowest row, is kept).
-- The first reason wins. Only suspects are compared.
-- Tables: checked_batch   the batch, as check_batch.sql gave it
--         suspect_hashes  (key_hash) hashes repeated in the batch or found in earlier
--                         batches by the key index (ingestion/key_index.py)
--         existing_keys   (customer_id, idempotency_key, batch_id) of the events that
--                         count in those batches with a suspect hash; keys are unique
--                         across batches
-- Parameters: $source_file  the batch's file (check_batch.sql names it for rejected
--                            events only)
-- Result: (source_row, detail) of each duplicate
WITH suspects AS (
    SELECT source_row, customer_id, idempotency_key
    FROM checked_batch
    WHERE reject_reason IS NULL AND key_hash IN (SELECT key_hash FROM suspect_hashes)
),
repeats AS (
    SELECT customer_id, idempotency_key, min(source_row) AS first_row
    FROM suspects
    GROUP BY ALL
    HAVING count(*) > 1
)
SELECT
    s.source_row,
    coalesce('already ingested in batch ' || e.batch_id,
             'first seen at ' || $source_file || ':' || r.first_row) AS detail
FROM suspects AS s
LEFT JOIN existing_keys AS e
    ON e.customer_id = s.customer_id AND e.idempotency_key = s.idempotency_key
LEFT JOIN repeats AS r
    ON r.customer_id = s.customer_id AND r.idempotency_key = s.idempotency_key
WHERE e.batch_id IS NOT NULL OR r.first_row <> s.source_row
