-- Quarantined events, optionally of one batch and with a reason containing some text.
-- Parameters: $files (quarantine partitions), $batch_id, $reason (NULL: no filter)
CREATE OR REPLACE TEMP TABLE picked AS
SELECT *
FROM read_parquet($files, hive_partitioning = false)
WHERE ($batch_id IS NULL OR batch_id = $batch_id)
  AND ($reason IS NULL OR contains(reject_reason, $reason))
