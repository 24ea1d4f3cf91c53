-- Each invoice before prepaid credits: its rounded lines, its adjustments, and how much
-- of it credits may pay (its usage charges, never more than the adjusted total).
-- Tables: line_items           (line_items.sql)
--         invoice_adjustments  (applied_adjustments.sql: one row per applied adjustment)
CREATE OR REPLACE TEMP TABLE invoice_totals AS
WITH lines AS (
    SELECT
        invoice_id,
        any_value(invoice_date) AS invoice_date,
        any_value(billing_month) AS billing_month,
        any_value(customer_id) AS customer_id,
        any_value(currency) AS currency,
        any_value(currency_exponent) AS currency_exponent,
        min(service_start) AS service_start,
        max(service_end) AS service_end,
        count(*) AS line_count,
        sum(amount) AS subtotal,
        coalesce(sum(amount) FILTER (WHERE billable_metric_id IS NOT NULL), 0) AS usage_subtotal
    FROM line_items
    GROUP BY invoice_id
),
adjusted AS (
    SELECT invoice_id, sum(amount) AS adjustments
    FROM invoice_adjustments
    GROUP BY invoice_id
)
SELECT
    l.*,
    CAST(coalesce(a.adjustments, 0) AS DECIMAL(38, 4)) AS adjustments,
    CAST(greatest(0, least(l.subtotal + coalesce(a.adjustments, 0), l.usage_subtotal))
         AS DECIMAL(38, 4)) AS creditable
FROM lines AS l
LEFT JOIN adjusted AS a USING (invoice_id)
