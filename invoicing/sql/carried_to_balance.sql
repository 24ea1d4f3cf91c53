-- The one place an invoice is kept from going below zero: a credit larger than what the
-- invoice charges (a fixed fee's quantity decreased mid-period, credited on the next
-- invoice: docs/invoicing.md#fixed-fee-quantity-changes) moves its excess to the
-- customer balance. The last step of assembly, after credits and taxes: an invoice whose
-- total would be negative gets one adjustment of +excess (type carried_to_balance), so
-- its total is exactly 0 and still the sum of its rounded lines; issuing writes -excess
-- to the balance (invoicing/balance.py, Orb's prorated_refund). The total is already a sum
-- of rounded amounts (invoices.sql), so nothing is rounded here.
-- Tables: invoice_heads_before (invoices.sql's heads: their total), line_items
-- Parameters: $adjustment_id, $source (what names the line: invoicing/balance.py)
WITH invoice_lines AS (
    SELECT invoice_id, list(line_item_id ORDER BY line_item_id) AS line_item_ids
    FROM line_items
    GROUP BY invoice_id
)
SELECT
    invoice_id,
    $adjustment_id AS adjustment_id,
    'carried_to_balance' AS adjustment_type,
    $source AS source,
    l.line_item_ids,
    total AS base,
    CAST(-total AS DECIMAL(38, 4)) AS amount
FROM invoice_heads_before
JOIN invoice_lines AS l USING (invoice_id)
WHERE total < 0
ORDER BY invoice_id
