-- Check raw landed events, resolve their customer and drop repeated idempotency keys.
-- Parameters: $files        landing Parquet files to read
--             $landing_root prefix cut from file names so lineage is relative to landing/
-- Tables:     customers(customer_id, external_customer_id)
-- Result: one row per raw event with reject_reason NULL for clean events.
-- Timestamps without an offset are read as UTC (the session zone is UTC).
CREATE OR REPLACE TEMP TABLE checked_events AS
WITH raw AS (
    SELECT
        substr(filename, length($landing_root) + 2) AS source_file,
        file_row_number + 1 AS source_row,
        nullif(trim(CAST(event_name AS VARCHAR)), '') AS event_name,
        CAST("timestamp" AS VARCHAR) AS raw_timestamp,
        nullif(trim(CAST(customer_id AS VARCHAR)), '') AS raw_customer_id,
        nullif(trim(CAST(external_customer_id AS VARCHAR)), '') AS raw_external_customer_id,
        nullif(trim(CAST(idempotency_key AS VARCHAR)), '') AS idempotency_key,
        CAST(properties AS VARCHAR) AS raw_properties
    FROM read_parquet($files, filename = true, file_row_number = true, union_by_name = true)
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
