-- Check raw landed events, resolve their customer and drop repeated idempotency keys.
-- Tables: parquet_events  Parquet batches, every field as text (storage/sources.py)
--         csv_events      CSV records, and one row per unreadable file (file_error)
--         json_lines      JSON Lines batches: one row per non-blank line
--         customers       (customer_id, external_customer_id)
-- Result: one row per raw event with reject_reason NULL for clean events.
-- Timestamps without an offset are read as UTC (the session zone is UTC).
CREATE OR REPLACE TEMP TABLE checked_events AS
WITH json_events AS (
    SELECT
        source_file,
        source_row,
        CASE
            WHEN j IS NULL THEN 'line is not valid JSON'
            WHEN json_type(j) <> 'OBJECT' THEN 'line is not a JSON object'
        END AS file_error,
        j ->> 'event_name' AS event_name,
        j ->> 'timestamp' AS "timestamp",
        j ->> 'customer_id' AS customer_id,
        j ->> 'external_customer_id' AS external_customer_id,
        j ->> 'idempotency_key' AS idempotency_key,
        CAST(j -> 'properties' AS VARCHAR) AS properties
    FROM (SELECT *, TRY_CAST(line AS JSON) AS j FROM json_lines)
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
        END AS problem
    FROM resolved
),
ranked AS (
    SELECT
        *,
        row_number() OVER keyed AS key_rank,
        first_value(source_file || ':' || source_row) OVER keyed AS first_seen
    FROM checked
    WINDOW keyed AS (
        PARTITION BY customer_id, idempotency_key, problem IS NULL
        ORDER BY "timestamp", source_file, source_row
    )
)
SELECT
    source_file, source_row, event_name, raw_timestamp, "timestamp",
    raw_customer_id, raw_external_customer_id, customer_id, idempotency_key,
    raw_properties, CAST(properties AS VARCHAR) AS properties,
    coalesce(problem, CASE WHEN key_rank > 1 THEN 'duplicate idempotency_key' END)
        AS reject_reason,
    CASE WHEN problem IS NULL AND key_rank > 1 THEN 'first seen at ' || first_seen END
        AS reject_detail
FROM ranked;
