-- Events whose customer is not (or no longer) in the catalog.
-- Tables: lake_events, customers (customer_id)
SELECT e.customer_id, count(*) AS events
FROM lake_events AS e
ANTI JOIN customers AS c USING (customer_id)
GROUP BY e.customer_id
ORDER BY events DESC, e.customer_id
LIMIT 20
