-- The lines a document shows for each computed invoice: its priced line items, then
-- its adjustments. Issued documents freeze exactly these rows (invoicing/documents.py).
-- Tables: line_items, invoice_adjustments (one billing run)
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
ORDER BY invoice_id, kind DESC, line_key
