-- One invoice per customer, currency and invoice date, from invoice_totals.sql.
-- Tables: invoice_totals   each invoice's lines and adjustments
--         credit_entries   (credit_drawdown.sql) the run's credit ledger entries
--         customer_terms   (customer_id, net_terms): days until an invoice is due
--         invoice_taxes    (invoicing/taxes/) the run's tax lines
-- Every amount here is a sum of amounts already rounded to the minor unit, so
-- total = subtotal + adjustments - credits_applied + tax holds exactly; tax is the
-- exclusive tax (inclusive tax is in the amounts already).
WITH invoice_credits AS (
    SELECT invoice_id, -sum(amount) AS credits_applied
    FROM credit_entries
    WHERE entry_type = 'drawdown'
    GROUP BY invoice_id
),
invoice_tax AS (
    SELECT invoice_id, sum(amount) FILTER (WHERE NOT inclusive) AS tax
    FROM invoice_taxes
    GROUP BY invoice_id
)
SELECT
    t.invoice_id,
    t.customer_id,
    t.currency,
    t.currency_exponent,
    t.billing_month,
    t.invoice_date,
    CAST(t.invoice_date + to_days(ct.net_terms) AS DATE) AS due_date,
    t.service_start,
    t.service_end,
    t.line_count,
    t.subtotal,
    t.adjustments,
    CAST(coalesce(c.credits_applied, 0) AS DECIMAL(38, 4)) AS credits_applied,
    CAST(coalesce(x.tax, 0) AS DECIMAL(38, 4)) AS tax,
    CAST(t.subtotal + t.adjustments - coalesce(c.credits_applied, 0) + coalesce(x.tax, 0)
         AS DECIMAL(38, 4)) AS total,
    CAST(t.subtotal + t.adjustments - coalesce(c.credits_applied, 0) + coalesce(x.tax, 0)
         AS DECIMAL(38, 4)) AS amount_due,
    'draft' AS status
FROM invoice_totals AS t
JOIN customer_terms AS ct USING (customer_id)
LEFT JOIN invoice_credits AS c USING (invoice_id)
LEFT JOIN invoice_tax AS x USING (invoice_id)
ORDER BY t.invoice_id
