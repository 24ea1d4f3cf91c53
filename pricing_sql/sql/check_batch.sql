-- Check one raw batch: fields, timestamps, customers, numeric properties, and
-- idempotency keys against the batch itself and every event already ingested.
-- Tables: parquet_events     Parquet rows, every field as text (storage/sources.py)
--         csv_events         CSV records, and one row per unreadable file (file_error)
--         json_lines         JSON Lines: one row per line (blank lines are skipped here)
--         customers          (customer_id, external_customer_id)
--         existing_keys      (customer_id, idempotency_key, batch_id) of the events that
--                            count in the earlier batches that may share a key (key index)
--         numeric_properties (key): properties some metric reads as a number
-- Parameters: $earliest, $latest  the accepted timestamp window [earliest, latest]
--             $closed_before      events before this UTC date fall in invoiced months
--             $batch_id           the batch being checked
-- Result: temp table checked_batch, one row per raw event, reject_reason NULL for
-- events to keep (batch_events.sql and batch_rejects.sql read it in order).
-- Timestamps without an offset are read as UTC.
CREATE OR REPLACE TEMP TABLE checked_batch AS
WITH json_events AS (
    SELECT
        source_file,
        source_row,
        CASE
            WHEN NOT json_valid(line) THEN 'line is not valid JSON'
            WHEN json_type(line) <> 'OBJECT' THEN 'line is not a JSON object'
        END AS file_error,
        e.event_name,
        e."timestamp",
        e.customer_id,
        e.external_customer_id,
        e.idempotency_key,
        CAST(e.properties AS VARCHAR) AS properties
    FROM (
        -- one parse per line for every field (->> would parse the line once per field)
        SELECT
            *,
            CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN json_transform(
                line, '{"event_name": "VARCHAR", "timestamp": "VARCHAR",
                        "customer_id": "VARCHAR", "external_customer_id": "VARCHAR",
                        "idempotency_key": "VARCHAR", "properties": "JSON"}')
            END AS e
        FROM json_lines
        -- skip blank lines; trim() only where a line is short enough to be blank, as
        -- trimming every line costs more than parsing it
        WHERE strlen(line) > 16 OR trim(line) <> ''
    )
),
all_events AS (
    SELECT * FROM parquet_events
    UNION ALL BY NAME SELECT * FROM csv_events
    UNION ALL BY NAME SELECT * FROM json_events
),
raw AS (
    SELECT
        source_file,
        source_row,
        file_error,
        nullif(trim(event_name), '') AS event_name,
        "timestamp" AS raw_timestamp,
        nullif(trim(customer_id), '') AS raw_customer_id,
        nullif(trim(external_customer_id), '') AS raw_external_customer_id,
        nullif(trim(idempotency_key), '') AS idempotency_key,
        properties AS raw_properties
    FROM all_events
),
resolved AS (
    SELECT
        raw.*,
        TRY_CAST(raw.raw_timestamp AS TIMESTAMPTZ) AS "timestamp",
        by_id.customer_id AS id_match,
        by_external.customer_id AS external_match,
        coalesce(by_id.customer_id, by_external.customer_id) AS customer_id,
        TRY_CAST(coalesce(raw.raw_properties, '{}') AS JSON) AS properties
    FROM raw
    LEFT JOIN customers AS by_id ON by_id.customer_id = raw.raw_customer_id
    LEFT JOIN customers AS by_external
        ON by_external.external_customer_id = raw.raw_external_customer_id
),
checked AS (
    SELECT
        *,
        CASE
            WHEN file_error IS NOT NULL THEN file_error
            WHEN event_name IS NULL THEN 'missing event_name'
            WHEN idempotency_key IS NULL THEN 'missing idempotency_key'
            WHEN raw_timestamp IS NULL THEN 'missing timestamp'
            WHEN "timestamp" IS NULL THEN 'timestamp is not an ISO 8601 instant'
            WHEN raw_customer_id IS NULL AND raw_external_customer_id IS NULL
                THEN 'missing customer_id and external_customer_id'
            WHEN raw_customer_id IS NOT NULL AND id_match IS NULL THEN 'unknown customer_id'
            WHEN raw_external_customer_id IS NOT NULL AND external_match IS NULL
                THEN 'unknown external_customer_id'
            WHEN id_match <> external_match
                THEN 'customer_id and external_customer_id name different customers'
            WHEN properties IS NULL OR json_type(properties) <> 'OBJECT'
                THEN 'properties is not a JSON object'
            WHEN "timestamp" < $earliest THEN 'timestamp is before the accepted window'
            WHEN "timestamp" > $latest THEN 'timestamp is in the future'
            WHEN bad_number IS NOT NULL
                THEN 'property ' || bad_number || ' is not a number in range'
        END AS problem
    FROM resolved
    LEFT JOIN LATERAL (
        -- the first property a metric needs as a number that is not one
        SELECT min(n.key) AS bad_number
        FROM numeric_properties AS n
        WHERE json_type(resolved.properties, '$.' || n.key) NOT IN ('NULL')
            AND TRY_CAST(json_extract_string(resolved.properties, '$.' || n.key)
                         AS DECIMAL(38, 9)) IS NULL
    ) ON true
),
-- A batch is one file: the first occurrence of a key in it (lowest row) is kept.
firsts AS (
    SELECT customer_id, idempotency_key, min(source_row) AS first_row
    FROM checked
    WHERE problem IS NULL
    GROUP BY ALL
),
-- Keys of this batch already ingested: joined from the batch's side, so the lake's
-- keys are only streamed past a hash table of this batch's keys.
earlier AS (
    SELECT k.customer_id, k.idempotency_key, e.batch_id
    FROM (SELECT DISTINCT customer_id, idempotency_key FROM checked WHERE problem IS NULL) AS k
    JOIN existing_keys AS e
        ON e.customer_id = k.customer_id AND e.idempotency_key = k.idempotency_key
),
ranked AS (
    SELECT
        checked.*,
        checked.source_file || ':' || f.first_row AS first_seen,
        checked.problem IS NULL AND f.first_row <> checked.source_row AS repeated,
        e.batch_id AS earlier_batch
    FROM checked
    LEFT JOIN firsts AS f
        ON checked.problem IS NULL
        AND f.customer_id = checked.customer_id
        AND f.idempotency_key = checked.idempotency_key
    -- keys are unique across batches, so this matches at most one earlier event
    LEFT JOIN earlier AS e
        ON e.customer_id = checked.customer_id
        AND e.idempotency_key = checked.idempotency_key
        AND checked.problem IS NULL
)
SELECT
    source_file, source_row, event_name, raw_timestamp, "timestamp",
    CAST("timestamp" AS DATE) AS event_date,
    raw_customer_id, raw_external_customer_id, customer_id, idempotency_key,
    raw_properties, CAST(properties AS VARCHAR) AS properties,
    coalesce(
        problem,
        CASE WHEN earlier_batch IS NOT NULL OR repeated THEN 'duplicate idempotency_key' END
    ) AS reject_reason,
    CASE
        WHEN problem IS NOT NULL THEN NULL
        WHEN earlier_batch IS NOT NULL THEN 'already ingested in batch ' || earlier_batch
        WHEN repeated THEN 'first seen at ' || first_seen
    END AS reject_detail,
    coalesce(CAST("timestamp" AS DATE) < $closed_before, false) AS late,
    $batch_id AS batch_id
FROM ranked
