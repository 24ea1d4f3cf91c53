-- Which earlier batches might hold an idempotency key of this batch.
-- Every committed batch keeps a key index: DuckDB's 64-bit hash() of each of its
-- clean events' idempotency keys (storage/ingest.py rebuilds the index if DuckDB's
-- version, and so possibly hash(), changes). Matching hashes is a scan of integers,
-- far cheaper than comparing every key string in the lake; a candidate batch is then
-- checked exactly, key by key and customer by customer, so a hash collision costs
-- time, never a wrong answer.
-- Tables: parquet_events, csv_events, json_lines  the batch (as in check_batch.sql)
--         key_index      (key_hash, batch_id) of every batch's index file
--         lake_batches   committed batches
-- Parameters: $batch_id  the batch being checked
SELECT DISTINCT i.batch_id
FROM key_index AS i
JOIN lake_batches AS b ON b.batch_id = i.batch_id
JOIN (
    SELECT DISTINCT hash(nullif(trim(idempotency_key), '')) AS key_hash
    FROM (
        SELECT idempotency_key FROM parquet_events
        UNION ALL SELECT idempotency_key FROM csv_events
        UNION ALL SELECT TRY_CAST(line AS JSON) ->> 'idempotency_key' FROM json_lines
    )
) AS k
    ON k.key_hash = i.key_hash
WHERE i.batch_id <> $batch_id
ORDER BY 1
