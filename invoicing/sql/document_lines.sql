-- The lines a document shows for each computed invoice: its priced line items, then
-- its adjustments, then its taxes, one line per rate. Issued documents freeze exactly
-- these rows (invoicing/documents.py).
-- Tables: line_items, invoice_adjustments, invoice_taxes (one billing run)
SELECT
    invoice_id,
    line_item_id AS line_key,
    'line' AS kind,
    name,
    quantity,
    service_start,
    service_end,
    CAST(amount AS DECIMAL(38, 4)) AS amount
FROM line_items
UNION ALL
SELECT
    invoice_id,
    'adjustment:' || source || ':' || adjustment_id,
    'adjustment',
    replace(adjustment_type, '_', ' ') || ' ' || adjustment_id || ' (' || source || ')',
    NULL,
    NULL,
    NULL,
    amount
FROM invoice_adjustments
UNION ALL
-- one tax line per rate: "tax" is added to the total, "included_tax" is in the amounts
SELECT
    invoice_id,
    'tax:' || tax_rate_id,
    CASE WHEN any_value(inclusive) THEN 'included_tax' ELSE 'tax' END,
    any_value(description),
    NULL,
    NULL,
    NULL,
    CAST(sum(amount) AS DECIMAL(38, 4))
FROM invoice_taxes
GROUP BY invoice_id, tax_rate_id
ORDER BY invoice_id, CASE kind WHEN 'line' THEN 0 WHEN 'adjustment' THEN 1 ELSE 2 END, line_key
