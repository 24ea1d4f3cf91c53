-- The one place an invoice is kept from going below zero: a credit larger than what the
-- invoice charges (a fixed fee's quantity decreased mid-period, credited on the next
-- invoice: docs/invoicing.md#fixed-fee-quantity-changes) moves its excess to the
-- customer balance. The last step of assembly, after credits and taxes: an invoice whose
-- total would be negative gets one adjustment of +excess (type carried_to_balance), so
-- its total is exactly 0 and still the sum of its rounded lines; issuing writes -excess
-- to the balance (invoicing/balance.py, Orb's prorated_refund). Every amount summed is a
-- rounded one, so nothing is rounded here. The total is invoices.sql's formula.
-- Tables: invoice_totals (invoice_totals.sql), line_items, credit_entries
--         (credit_drawdown.sql), invoice_taxes (invoicing/taxes/)
-- Parameters: $adjustment_id, $source (what names the line: invoicing/balance.py)
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
),
invoice_lines AS (
    SELECT invoice_id, list(line_item_id ORDER BY line_item_id) AS line_item_ids
    FROM line_items
    GROUP BY invoice_id
),
totals AS (
    SELECT
        t.invoice_id,
        CAST(t.subtotal + t.adjustments - coalesce(c.credits_applied, 0)
             + coalesce(x.tax, 0) AS DECIMAL(38, 4)) AS total
    FROM invoice_totals AS t
    LEFT JOIN invoice_credits AS c USING (invoice_id)
    LEFT JOIN invoice_tax AS x USING (invoice_id)
)
SELECT
    invoice_id,
    $adjustment_id AS adjustment_id,
    'carried_to_balance' AS adjustment_type,
    $source AS source,
    l.line_item_ids,
    total AS base,
    CAST(-total AS DECIMAL(38, 4)) AS amount
FROM totals
JOIN invoice_lines AS l USING (invoice_id)
WHERE total < 0
ORDER BY invoice_id
