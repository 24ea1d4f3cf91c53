-- The customers whose events a batch added: the files of its batches ($files), as
-- ingestion wrote them (events/event_date=<day>/<batch_id>.parquet).
SELECT DISTINCT customer_id
FROM read_parquet($files, hive_partitioning = false)
ORDER BY customer_id
