-- Billed vs collected per currency for the documents issued for billing month $month,
-- from issued_documents and document_events (invoicing/documents.py). A document's status
-- is its latest event (by seq). Billed = totals of issued documents not voided (credit notes
-- count negative); collected = totals of those whose status is paid; outstanding = billed
-- - collected. Status changes after the asset ran show on its next materialization.
WITH status AS (
    SELECT number, arg_max(status, seq) AS status
    FROM document_events
    GROUP BY number
),
documents AS (
    SELECT d.*, coalesce(s.status, 'issued') AS status
    FROM issued_documents AS d
    LEFT JOIN status AS s USING (number)
    WHERE d.billing_month = CAST($month AS DATE)
)
SELECT
    CAST($month AS DATE) AS billing_month,
    currency,
    count(*) AS documents,
    count(*) FILTER (WHERE status = 'paid') AS paid_documents,
    count(*) FILTER (WHERE status = 'void') AS void_documents,
    CAST(coalesce(sum(total) FILTER (WHERE status <> 'void'), 0) AS DECIMAL(38, 4)) AS billed,
    CAST(coalesce(sum(total) FILTER (WHERE status = 'paid'), 0) AS DECIMAL(38, 4)) AS collected,
    CAST(coalesce(sum(total) FILTER (WHERE status = 'issued'), 0) AS DECIMAL(38, 4))
        AS outstanding,
    CAST(coalesce(sum(total) FILTER (WHERE status = 'void'), 0) AS DECIMAL(38, 4)) AS voided
FROM documents
GROUP BY currency
ORDER BY currency
