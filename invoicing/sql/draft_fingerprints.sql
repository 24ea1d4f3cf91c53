-- A fingerprint of each draft document's content, for every draft of a run at once: a
-- draft is rendered again only when its fingerprint changed (reports/draft_folder.py).
-- A draft is made from the rows of its invoice id in the run's tables (its invoice, line
-- items, their breakdowns, adjustments, taxes and corrections; a correction also from its
-- issued original, which never changes once issued) and from its customer, so the
-- fingerprint covers all of those rows whole, in the order the run wrote them, and the
-- renderer's own part ($salt: the issuer, the templates' and the formatting code's
-- version, DuckDB's). A correction shares its invoice's rows: either changes both.
-- Each row is DuckDB's 64-bit hash of all its columns (about 10x cheaper than hashing its
-- text, and an accidental collision among a month's changed rows is ~n/2^64), an
-- invoice's the hash of its rows' hashes in order.
-- Tables: invoices, line_items, invoice_adjustments, sub_line_items, invoice_corrections,
--             invoice_taxes
--             (one billing run, without run_id, each with its row number as _row)
--         issued_heads, document_status (invoicing/issuing.py register_issued)
--         customers (customer_id, content): each customer as the renderer sees it
-- Parameters: $salt
WITH source_rows AS (
    SELECT invoice_id, 1 AS source, _row, hash(*COLUMNS(* EXCLUDE (_row))) AS content
    FROM invoices
    UNION ALL
    SELECT invoice_id, 2, _row, hash(*COLUMNS(* EXCLUDE (_row)))
    FROM line_items
    UNION ALL
    SELECT invoice_id, 3, _row, hash(*COLUMNS(* EXCLUDE (_row)))
    FROM sub_line_items
    UNION ALL
    SELECT invoice_id, 4, _row, hash(*COLUMNS(* EXCLUDE (_row)))
    FROM invoice_adjustments
    UNION ALL
    SELECT invoice_id, 5, _row, hash(*COLUMNS(* EXCLUDE (_row)))
    FROM invoice_corrections
    UNION ALL
    SELECT invoice_id, 6, _row, hash(*COLUMNS(* EXCLUDE (_row)))
    FROM invoice_taxes
),
invoice_data AS (
    SELECT invoice_id, hash(list(content ORDER BY source, _row)) AS data
    FROM source_rows
    GROUP BY invoice_id
),
live AS (  -- issued invoices not voided: no longer drafts
    SELECT h.invoice_id
    FROM issued_heads AS h
    JOIN document_status AS s USING (number)
    WHERE s.status <> 'void' AND h.document_type = 'invoice'
),
documents AS (
    SELECT invoice_id AS reference, invoice_id, customer_id
    FROM invoices
    WHERE invoice_id NOT IN (SELECT invoice_id FROM live)
    UNION ALL
    SELECT DISTINCT c.correction_id, c.invoice_id, h.customer_id
    FROM invoice_corrections AS c
    JOIN issued_heads AS h ON h.number = c.corrects
)
SELECT
    d.reference,
    d.invoice_id,
    md5(concat_ws(chr(30), $salt, d.reference, i.data, coalesce(c.content, ''))) AS fingerprint
FROM documents AS d
JOIN invoice_data AS i USING (invoice_id)
LEFT JOIN customers AS c USING (customer_id)
ORDER BY d.reference
