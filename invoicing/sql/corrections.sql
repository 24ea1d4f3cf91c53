-- Corrections of issued invoices: for each computed invoice that was issued (and not
-- voided), the difference per line between what the run computes now and what the
-- issued invoice plus its issued corrections already billed. Issued invoices the run no
-- longer produces (a subscription cancelled after the fact) are corrected to zero; those
-- of customers the run left out (rating them raised) are not corrected at all.
-- Tables: computed_lines  document_lines.sql for this run
--         issued_heads, issued_lines, document_status (number, status)
--         excluded_customers (customer_id) left out of this run
-- Parameters: $month, the billing month
WITH live AS (
    SELECT h.*
    FROM issued_heads AS h
    JOIN document_status AS s USING (number)
    WHERE s.status <> 'void' AND h.billing_month = $month
        AND h.customer_id NOT IN (SELECT customer_id FROM excluded_customers)
),
originals AS (
    SELECT invoice_id, number AS corrects
    FROM live
    WHERE document_type = 'invoice'
),
billed AS (
    SELECT
        h.invoice_id,
        l.line_key,
        any_value(l.kind) AS kind,
        any_value(l.name) AS name,
        any_value(l.service_start) AS service_start,
        any_value(l.service_end) AS service_end,
        sum(l.amount) AS amount
    FROM issued_lines AS l
    JOIN live AS h USING (number)
    GROUP BY h.invoice_id, l.line_key
),
differences AS (
    SELECT
        coalesce(c.invoice_id, b.invoice_id) AS invoice_id,
        coalesce(c.line_key, b.line_key) AS line_key,
        coalesce(c.kind, b.kind) AS kind,
        coalesce(c.name, b.name) AS name,
        c.quantity,
        coalesce(c.service_start, b.service_start) AS service_start,
        coalesce(c.service_end, b.service_end) AS service_end,
        coalesce(b.amount, 0) AS billed,
        coalesce(c.amount, 0) AS computed,
        CAST(coalesce(c.amount, 0) - coalesce(b.amount, 0) AS DECIMAL(38, 4)) AS amount
    FROM computed_lines AS c
    FULL JOIN billed AS b ON b.invoice_id = c.invoice_id AND b.line_key = c.line_key
)
SELECT o.corrects, d.*
FROM differences AS d
JOIN originals AS o USING (invoice_id)
WHERE d.amount <> 0
ORDER BY d.invoice_id, d.kind DESC, d.line_key
