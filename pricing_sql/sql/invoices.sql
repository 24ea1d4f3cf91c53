-- One draft invoice per customer, currency and billing month, from its line items.
-- Tables: line_items (the output of line_items.sql)
-- The total is the sum of the already rounded line amounts, so it is exact and
-- always equals what the lines show.
SELECT
    invoice_id,
    customer_id,
    currency,
    currency_exponent,
    billing_month,
    invoice_period_start AS period_start,
    invoice_period_end AS period_end,
    count(*) AS line_count,
    sum(amount) AS subtotal,
    sum(amount) AS total,
    'draft' AS status
FROM line_items
GROUP BY ALL
ORDER BY invoice_id
