-- A checked batch's rejected events, in file order, with every field as it was sent:
-- those check_batch.sql rejected, their fields unpacked from its raw column, and the
-- duplicates found after it, whose fields are read again from raw_events.
-- event_date is the UTC day (null when the timestamp is unreadable).
-- Tables: checked_batch   the batch, as check_batch.sql gave it
--         duplicate_rows  (source_row, detail) from duplicate_keys.sql
--         raw_events      the batch's raw events (raw_events.sql)
-- Parameters: $batch_id          the batch
--             $duplicate_reason  the reason a duplicate is quarantined with
SELECT
    $batch_id AS batch_id, raw ->> 'source_file' AS source_file, source_row, reject_reason,
    CAST(NULL AS VARCHAR) AS reject_detail, CAST("timestamp" AS DATE) AS event_date,
    idempotency_key, event_name, raw ->> 'timestamp' AS raw_timestamp,
    raw ->> 'customer_id' AS raw_customer_id,
    raw ->> 'external_customer_id' AS raw_external_customer_id,
    raw ->> 'properties' AS raw_properties
FROM checked_batch
WHERE reject_reason IS NOT NULL
UNION ALL
SELECT
    $batch_id, r.source_file, c.source_row, $duplicate_reason, d.detail,
    CAST(c."timestamp" AS DATE), c.idempotency_key, c.event_name, r.raw_timestamp,
    r.raw_customer_id, r.raw_external_customer_id, r.raw_properties
FROM duplicate_rows AS d
JOIN checked_batch AS c USING (source_row)
JOIN raw_events AS r USING (source_row)
ORDER BY source_row
