-- A checked batch's clean events, in a total order (a batch is one file, so
-- source_row is unique in it), so the same batch always gives the same files.
-- Parameters: $batch_id  the batch (a constant: added here, it costs the sort nothing)
SELECT
    "timestamp", event_name, customer_id, idempotency_key, properties,
    $batch_id AS batch_id, source_file, source_row, late, event_date
FROM checked_batch
WHERE reject_reason IS NULL
ORDER BY "timestamp", source_row
