-- Prepaid credits drawn down against the run's invoices, and what is left of a grant on
-- its expiry date: the run's credit ledger entries, drawdowns then expiries.
-- Tables: invoice_totals   (invoice_totals.sql) each invoice's creditable amount
--         issued_credits   (invoice_id, credits_applied): invoices already issued keep theirs
--         credit_balances  (grant_id, customer_id, currency, effective_date, expiry_date,
--                           balance): every grant and its balance before the run
-- Parameters: $after, $through: the run's invoice dates, after the first, up to the last
--
-- A grant can pay an invoice dated D when effective_date < D <= expiry_date. Each
-- customer's invoices in one currency draw in date order, each from that customer's grants
-- in that currency, soonest expiry first (none last), then earliest effective date, then
-- grant id, up to its creditable amount. Within one invoice that is a running sum over
-- the grants in draw order: a grant gives min(what it has, what the invoice still needs
-- after the grants before it), which is exact because a grant before it gives all it has
-- unless the invoice is then paid in full. Across invoices the grants a later invoice may
-- use differ (some expire, some take effect), so the invoices are taken one rank at a
-- time: the recursion below steps through the invoice ranks of every customer at once,
-- carrying each grant's balance from one rank to the next. Amounts are in minor units
-- already; nothing is rounded.
WITH RECURSIVE
grants AS (
    SELECT
        grant_id,
        customer_id,
        currency,
        effective_date,
        expiry_date,
        CAST(balance AS DECIMAL(38, 4)) AS balance,
        row_number() OVER (
            PARTITION BY customer_id, currency
            ORDER BY coalesce(expiry_date, DATE '9999-12-31'), effective_date, grant_id
        ) AS draw_rank
    FROM credit_balances
),
invoices AS (
    SELECT
        t.invoice_id,
        t.customer_id,
        t.currency,
        t.invoice_date,
        CAST(coalesce(i.credits_applied, t.creditable) AS DECIMAL(38, 4)) AS need,
        row_number() OVER (
            PARTITION BY t.customer_id, t.currency ORDER BY t.invoice_date, t.invoice_id
        ) AS invoice_rank
    FROM invoice_totals AS t
    LEFT JOIN issued_credits AS i USING (invoice_id)
),
-- One row per grant and invoice rank: the grant's balance before that rank's invoice
-- and what the invoice takes from it. Rank 0 is the balance before the run.
drawn (invoice_rank, invoice_id, invoice_date, grant_id, customer_id, currency, draw_rank,
       effective_date, expiry_date, balance, taken) AS (
    SELECT
        0,
        CAST(NULL AS VARCHAR),
        CAST(NULL AS DATE),
        grant_id,
        customer_id,
        currency,
        draw_rank,
        effective_date,
        expiry_date,
        balance,
        CAST(0 AS DECIMAL(38, 4))
    FROM grants
    UNION ALL
    SELECT
        invoice_rank,
        invoice_id,
        invoice_date,
        grant_id,
        customer_id,
        currency,
        draw_rank,
        effective_date,
        expiry_date,
        balance,
        CAST(greatest(0, least(usable, need - (sum(usable) OVER earlier - usable)))
             AS DECIMAL(38, 4))
    FROM (
        SELECT
            i.invoice_rank,
            i.invoice_id,
            i.invoice_date,
            i.need,
            d.grant_id,
            d.customer_id,
            d.currency,
            d.draw_rank,
            d.effective_date,
            d.expiry_date,
            d.balance - d.taken AS balance,
            CASE
                WHEN d.balance - d.taken > 0
                    AND d.effective_date < i.invoice_date
                    AND (d.expiry_date IS NULL OR i.invoice_date <= d.expiry_date)
                THEN d.balance - d.taken
                ELSE CAST(0 AS DECIMAL(38, 4))
            END AS usable
        FROM drawn AS d
        JOIN invoices AS i
            ON i.customer_id = d.customer_id
            AND i.currency = d.currency
            AND i.invoice_rank = d.invoice_rank + 1
    )
    WINDOW earlier AS (PARTITION BY customer_id, currency ORDER BY draw_rank
                       ROWS UNBOUNDED PRECEDING)
),
remaining AS (
    SELECT g.*, g.balance - coalesce(d.taken, 0) AS remaining
    FROM grants AS g
    LEFT JOIN (SELECT grant_id, sum(taken) AS taken FROM drawn GROUP BY grant_id) AS d
        USING (grant_id)
),
entries AS (
    SELECT
        'drawdown' AS entry_type,
        grant_id,
        customer_id,
        currency,
        invoice_date AS entry_date,
        -taken AS amount,
        invoice_id,
        expiry_date,
        effective_date
    FROM drawn
    WHERE taken > 0
    UNION ALL
    SELECT
        'expiry',
        grant_id,
        customer_id,
        currency,
        expiry_date,
        -remaining,
        NULL,
        expiry_date,
        effective_date
    FROM remaining
    WHERE $after < expiry_date AND expiry_date <= $through AND remaining > 0
)
SELECT
    entry_type,
    grant_id,
    customer_id,
    currency,
    entry_date,
    CAST(amount AS DECIMAL(38, 4)) AS amount,
    invoice_id
FROM entries
-- drawdowns by invoice date and invoice, then in draw order; expiries by date, then in
-- draw order
ORDER BY
    entry_type,
    entry_date,
    invoice_id,
    coalesce(expiry_date, DATE '9999-12-31'),
    effective_date,
    grant_id
