-- Every raw event of a batch as text, whatever its format, with where it came from.
-- Tables: parquet_events     Parquet rows, every field as text (ingestion/sources.py)
--         csv_events         CSV records (file_error set for one that cannot be read), and
--                            one row per file that cannot be read at all
--         json_lines         JSON Lines: one row per line (blank lines are skipped here),
--                            line_error set for a line that is not UTF-8
-- Result: temp view raw_events, read by check_batch.sql, and again by batch_rejects.sql
-- for the fields of the few events found to be duplicates afterwards.
CREATE OR REPLACE TEMP VIEW raw_events AS
WITH json_events AS (
    SELECT
        source_file,
        source_row,
        CASE
            WHEN line_error IS NOT NULL THEN line_error
            WHEN e IS NULL AND NOT json_valid(line) THEN 'line is not valid JSON'
            -- valid JSON is an object when it starts with a brace (e is null for null)
            WHEN e IS NULL OR NOT starts_with(line, '{') AND ltrim(line, e' \t\r')[1] <> '{'
                THEN 'line is not a JSON object'
        END AS file_error,
        e.event_name,
        e."timestamp",
        e.customer_id,
        e.external_customer_id,
        e.idempotency_key,
        CAST(e.properties AS VARCHAR) AS properties
    FROM (
        -- one parse per line, for every field and for validity (TRY: null when the line
        -- is not JSON, or is JSON's null); json_valid and json_type would parse it twice
        -- more (docs/capacity.md#http-ingestion)
        SELECT
            *,
            TRY(json_transform(
                line, '{"event_name": "VARCHAR", "timestamp": "VARCHAR",
                        "customer_id": "VARCHAR", "external_customer_id": "VARCHAR",
                        "idempotency_key": "VARCHAR", "properties": "JSON"}')) AS e
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
)
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
