-- "Previously invoiced": what a period's threshold invoices billed, taken off the next
-- invoice of the period line by line (docs/invoicing.md#threshold-invoices). A threshold
-- invoice's line is its base line's id with `~T<n>` (n: the invoice's place in the
-- period) and bills that line's usage from the period's start to its cutoff, so the next
-- invoice (threshold invoice n + 1, else the period's final invoice, which holds the base
-- line itself) takes off the amount of line n as this run recomputes it. Each amount is a
-- rounded line's, so nothing is rounded again.
-- Tables: line_items (one billing run, threshold invoices' lines included)
WITH threshold_lines AS (
    SELECT
        invoice_id,
        line_item_id,
        amount,
        regexp_extract(line_item_id, '^(.*)~T([0-9]+)$', 1) AS base_id,
        CAST(regexp_extract(line_item_id, '^(.*)~T([0-9]+)$', 2) AS INTEGER) AS sequence
    FROM line_items
    WHERE regexp_matches(line_item_id, '~T[0-9]+$')
),
following AS (
    SELECT
        t.base_id,
        t.invoice_id AS earlier_invoice_id,
        t.amount,
        coalesce(n.invoice_id, b.invoice_id) AS invoice_id,
        coalesce(n.line_item_id, b.line_item_id) AS line_item_id
    FROM threshold_lines AS t
    LEFT JOIN threshold_lines AS n ON n.base_id = t.base_id AND n.sequence = t.sequence + 1
    LEFT JOIN line_items AS b ON b.line_item_id = t.base_id AND n.line_item_id IS NULL
)
SELECT
    invoice_id,
    base_id AS adjustment_id,
    'previously_invoiced' AS adjustment_type,
    'threshold invoice ' || earlier_invoice_id AS source,
    [line_item_id] AS line_item_ids,
    CAST(amount AS DECIMAL(38, 4)) AS base,
    CAST(-amount AS DECIMAL(38, 4)) AS amount
FROM following
WHERE invoice_id IS NOT NULL
ORDER BY invoice_id, adjustment_id
