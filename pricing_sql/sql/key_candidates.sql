-- Which earlier batches might hold an idempotency key of this batch.
-- Every committed batch keeps a key index: DuckDB's 64-bit hash() of each of its
-- clean events' idempotency keys (storage/ingest.py rebuilds the index if DuckDB's
-- version, and so possibly hash(), changes). Matching hashes is a scan of integers,
-- far cheaper than comparing every key string in the lake; a candidate batch is then
-- checked exactly, key by key and customer by customer (duplicate_keys.sql), so a
-- hash collision costs time, never a wrong answer.
-- Tables: checked_batch  the batch, checked by check_batch.sql (with key_hash)
--         key_index      (key_hash, batch_id) of every batch's index file
--         lake_batches   committed batches
-- Parameters: $batch_id  the batch being checked
SELECT DISTINCT i.batch_id
FROM key_index AS i
JOIN lake_batches AS b ON b.batch_id = i.batch_id
WHERE i.key_hash IN (SELECT key_hash FROM checked_batch WHERE reject_reason IS NULL)
    AND i.batch_id <> $batch_id
ORDER BY 1
