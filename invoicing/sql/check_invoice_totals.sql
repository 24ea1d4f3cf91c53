-- Invoices whose amounts do not add up, with the reason: the subtotal must be the sum
-- of the rounded lines, the adjustments the sum of the applied adjustments, the tax the
-- sum of its (exclusive) tax lines, the total subtotal + adjustments - credits + tax,
-- and no invoice may be negative (only credit notes, separate documents, take money back).
-- Tables: invoices, line_items, invoice_adjustments, invoice_taxes (one billing run)
WITH lines AS (
    SELECT invoice_id, sum(amount) AS amount FROM line_items GROUP BY invoice_id
),
adjusted AS (
    SELECT invoice_id, sum(amount) AS amount FROM invoice_adjustments GROUP BY invoice_id
),
taxed AS (
    SELECT invoice_id, sum(amount) AS amount FROM invoice_taxes WHERE NOT inclusive
    GROUP BY invoice_id
),
compared AS (
    SELECT
        i.invoice_id,
        i.subtotal,
        coalesce(l.amount, 0) AS lines,
        i.adjustments,
        coalesce(a.amount, 0) AS applied,
        i.credits_applied,
        i.tax,
        coalesce(x.amount, 0) AS tax_lines,
        i.total
    FROM invoices AS i
    LEFT JOIN lines AS l USING (invoice_id)
    LEFT JOIN adjusted AS a USING (invoice_id)
    LEFT JOIN taxed AS x USING (invoice_id)
)
SELECT invoice_id, 'subtotal is not the sum of its lines' AS problem FROM compared
WHERE subtotal <> lines
UNION ALL
SELECT invoice_id, 'adjustments are not the sum of those applied' FROM compared
WHERE adjustments <> applied
UNION ALL
SELECT invoice_id, 'tax is not the sum of its tax lines' FROM compared
WHERE tax <> tax_lines
UNION ALL
SELECT invoice_id, 'total is not subtotal + adjustments - credits + tax' FROM compared
WHERE total <> subtotal + adjustments - credits_applied + tax
UNION ALL
SELECT invoice_id, 'negative total' FROM compared WHERE total < 0
UNION ALL
SELECT invoice_id, 'negative credits' FROM compared WHERE credits_applied < 0
ORDER BY ALL
