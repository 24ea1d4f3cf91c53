-- What taxes apply to, after adjustments and prepaid credits (Orb's order): each
-- invoice's line items, its applied adjustments, and its credits as one negative line
-- (line key 'credits'). The keys are those of document_lines.sql.
-- Tables: invoice_totals (invoice_totals.sql), line_items, invoice_adjustments,
--         credit_entries (credit_drawdown.sql: a drawdown's amount is negative)
WITH lines AS (
    SELECT invoice_id, line_item_id AS line_key, CAST(amount AS DECIMAL(38, 4)) AS amount
    FROM line_items
    UNION ALL
    SELECT invoice_id, 'adjustment:' || source || ':' || adjustment_id, amount
    FROM invoice_adjustments
    UNION ALL
    SELECT invoice_id, 'credits', sum(amount)
    FROM credit_entries
    WHERE entry_type = 'drawdown'
    GROUP BY invoice_id
)
SELECT
    t.invoice_id,
    t.customer_id,
    t.currency,
    t.currency_exponent,
    l.line_key,
    CAST(l.amount AS DECIMAL(38, 4)) AS amount
FROM lines AS l
JOIN invoice_totals AS t USING (invoice_id)
ORDER BY t.invoice_id, l.line_key
