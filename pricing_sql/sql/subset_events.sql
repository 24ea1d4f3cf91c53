-- The period's events of some customers only. Rating runs its usage query over them
-- when the query over every customer raised: to find whose values make it fail
-- (pricing_sql/isolation.py), then once more over everyone else.
-- Tables: period_events     (usage_events.sql)
--         subset_customers  (customer_id) the customers to rate
CREATE OR REPLACE TEMP VIEW subset_events AS
SELECT e.*
FROM period_events AS e
WHERE e.customer_id IN (SELECT customer_id FROM subset_customers)
