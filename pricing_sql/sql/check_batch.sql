-- Check one raw batch: fields, timestamps, customers and numeric properties
-- (duplicate_keys.sql then checks the idempotency keys of the events that pass).
-- Tables: parquet_events     Parquet rows, every field as text (storage/sources.py)
--         csv_events         CSV records, and one row per unreadable file (file_error)
--         json_lines         JSON Lines: one row per line (blank lines are skipped here)
--         customers          (customer_id, external_customer_id)
-- Parameters: $earliest, $latest  the accepted timestamp window [earliest, latest]
--             $numeric_keys       properties some metric reads as a number, sorted
--             $closed_before      events before this UTC date fall in invoiced months
-- Result: temp table checked_batch, one row per raw event, reject_reason NULL for
-- events to keep (batch_events.sql and batch_rejects.sql read it in order), and
-- key_hash, the hash() of customer and key (storage/key_index.py).
-- Each event is checked on its own, in one pass: nothing here compares events.
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
    FROM (
        SELECT
            *,
            -- the first property a metric needs as a number that is not one: one parse
            -- per event for all of them (a lateral join over the keys made DuckDB keep
            -- every event in memory for a second pass)
            $numeric_keys[list_position(
                list_transform(
                    json_extract_string(properties,
                                        list_transform($numeric_keys, lambda k: '$.' || k)),
                    lambda v: v IS NULL OR TRY_CAST(v AS DECIMAL(38, 9)) IS NOT NULL),
                false)] AS bad_number
        FROM resolved
    )
)
SELECT
    source_file, source_row, event_name, raw_timestamp, "timestamp",
    CAST("timestamp" AS DATE) AS event_date,
    raw_customer_id, raw_external_customer_id, customer_id, idempotency_key,
    hash(customer_id, idempotency_key) AS key_hash,
    raw_properties, CAST(properties AS VARCHAR) AS properties,
    problem AS reject_reason,
    CAST(NULL AS VARCHAR) AS reject_detail,
    coalesce(CAST("timestamp" AS DATE) < $closed_before, false) AS late
FROM checked
