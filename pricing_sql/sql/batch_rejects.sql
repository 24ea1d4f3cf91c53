-- A checked batch's rejected events, in file order.
-- Parameters: $batch_id  the batch
SELECT
    $batch_id AS batch_id, source_file, source_row, reject_reason, reject_detail, event_date,
    idempotency_key, event_name, raw_timestamp, raw_customer_id, raw_external_customer_id,
    raw_properties
FROM checked_batch
WHERE reject_reason IS NOT NULL
ORDER BY source_row
