-- Check one raw batch: fields, timestamps, customers and numeric properties
-- (duplicate keys are found next, by ingestion/batches.py and duplicate_keys.sql).
-- Tables: raw_events         every raw event as text (raw_events.sql)
--         customers          (customer_id, external_customer_id)
-- Parameters: $earliest, $latest  the accepted timestamp window [earliest, latest]
--             $numeric_keys       properties some metric reads as a number, sorted
--             $property_limit     such a property's value, as rated (DECIMAL(38, 9)), must be
--                                 below it in absolute value (pricing_sql.metrics.PROPERTY_LIMIT:
--                                 what a month of a customer's events can sum without overflow)
--             $out_of_range       the reason's words for a number beyond it
--             $closed_before      events before this UTC date fall in invoiced months
--             $too_old            the reason for a timestamp before $earliest
--             $scope_start, $scope_end, $scope_customer  a backfill's timeframe [start, end)
--                                 and customer (ingestion/backfills.py); null: no bound
-- Result: one row per raw event, reject_reason NULL for events to keep: those first
-- (ingestion/batches.py takes them as a slice), in timestamp then row order (each day's
-- file is then clustered by customer, ingestion/event_files.py: the same batch always
-- gives the same files), then the rejected ones. With
-- key_hash, the hash() of customer and key (ingestion/key_index.py). A rejected event
-- keeps its file and fields as sent, packed in one JSON text, raw (batch_rejects.sql
-- unpacks it); a clean event has them parsed, and a batch is one file, which
-- ingestion/batches.py names for its clean events. Each column carried costs twice,
-- through the sort and into Arrow: six mostly empty ones cost 0.11 CPU seconds per 1M
-- events more than this one, and the day is left to Arrow too.
-- Each event is checked on its own, in one pass: nothing here compares events.
-- Timestamps without an offset are read as UTC.
WITH resolved AS (
    SELECT
        raw.*,
        TRY_CAST(raw.raw_timestamp AS TIMESTAMPTZ) AS "timestamp",
        by_id.customer_id AS id_match,
        by_external.customer_id AS external_match,
        coalesce(by_id.customer_id, by_external.customer_id) AS customer_id,
        TRY_CAST(coalesce(raw.raw_properties, '{}') AS JSON) AS properties
    FROM raw_events AS raw
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
            WHEN "timestamp" < CAST($scope_start AS TIMESTAMPTZ)
                OR "timestamp" >= CAST($scope_end AS TIMESTAMPTZ)
                THEN 'timestamp is outside the backfill''s timeframe'
            WHEN customer_id <> CAST($scope_customer AS VARCHAR)
                THEN 'customer is outside the backfill''s scope'
            WHEN "timestamp" < $earliest THEN $too_old
            WHEN "timestamp" > $latest THEN 'timestamp is in the future'
            WHEN bad_number IS NOT NULL THEN 'property ' || bad_number || CASE
                -- a number (1e30, -inf) beyond the limit, or not a number at all
                WHEN isnan(coalesce(TRY_CAST(
                        json_extract_string(properties, '$.' || bad_number) AS DOUBLE), 'NaN'))
                    THEN ' is not a number'
                ELSE ' ' || $out_of_range
            END
        END AS problem
    FROM (
        SELECT
            *,
            -- the first property a metric needs as a number that is not one below the
            -- limit: one parse per event for all of them (a lateral join over the keys
            -- made DuckDB keep every event in memory for a second pass)
            $numeric_keys[list_position(
                list_transform(
                    json_extract_string(properties,
                                        list_transform($numeric_keys, lambda k: '$.' || k)),
                    lambda v: v IS NULL OR coalesce(
                        abs(TRY_CAST(v AS DECIMAL(38, 9))) < $property_limit, false)),
                false)] AS bad_number
        FROM resolved
    )
)
SELECT
    source_row, event_name, "timestamp", customer_id, idempotency_key,
    hash(customer_id, idempotency_key) AS key_hash,
    CAST(properties AS VARCHAR) AS properties,
    problem AS reject_reason,
    coalesce(CAST("timestamp" AS DATE) < $closed_before, false) AS late,
    CASE WHEN problem IS NOT NULL THEN json_object(
        'source_file', source_file, 'timestamp', raw_timestamp,
        'customer_id', raw_customer_id, 'external_customer_id', raw_external_customer_id,
        'properties', raw_properties) END AS raw
FROM checked
ORDER BY problem IS NOT NULL, "timestamp", source_row
