-- Orb's event search: the events with these keys in [$start, $end), each with whether it
-- is deprecated (no longer in active_events). Events of a backfill not (or no longer)
-- reflected are not shown: they are not part of the usage.
-- Tables: lake_events, lake_batches, active_events (pricing_sql.active_events, over the
--         files of the timeframe's days)
-- Parameters: $ids (the idempotency keys), $start, $end
-- Result: oldest first; one id's events in the order they came to count
SELECT
    e.idempotency_key AS id,
    e.customer_id,
    e.event_name,
    e."timestamp",
    e.properties,
    a.batch_id IS NULL AS deprecated
FROM lake_events AS e
JOIN lake_batches AS b ON b.batch_id = e.batch_id
LEFT JOIN active_events AS a ON a.batch_id = e.batch_id AND a.source_row = e.source_row
WHERE list_contains($ids, e.idempotency_key)
    AND e."timestamp" >= $start AND e."timestamp" < $end
ORDER BY e."timestamp", e.idempotency_key, e.customer_id, b.committed_at, e.batch_id
