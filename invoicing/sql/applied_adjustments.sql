-- Every adjustment applied on the run's invoices, in the order applied, with its base and
-- its rounded amount.
-- Tables: adjustment_scopes  (adjustment_scopes.sql) each adjustment on each invoice: its
--                            type and amount or fraction, the lines it covers and their
--                            rounded sum
--
-- On each invoice adjustments apply in Orb's order: usage discounts, amount discounts,
-- percentage discounts, minimums, maximums, then by id (then source and lines). Each
-- works on the sum of its lines plus the earlier adjustments whose lines all lie within
-- its own (its base), and is rounded once, when made, to the currency's minor unit half
-- away from zero (Python's ROUND_HALF_UP; round() on DECIMAL):
--   usage discount       its parameter: what pricing its lines again at their reduced
--                        quantities took off them, already rounded (adjustment_scopes.sql)
--   amount discount      -min(amount, base), never below zero
--   percentage discount  -round(base * fraction)
--   minimum              +(minimum - base) when the base is below it (a true-up), else 0
--   maximum              -(base - maximum) when the base is above it, else 0
-- An adjustment's amount depends on the amounts of the ones before it, so the recursion
-- below makes one adjustment per step, on every invoice at once, appending its base and
-- amount to the invoice's lists of those made so far: its base is its lines' sum plus the
-- amounts at the positions of the earlier adjustments nested in it (worked out once,
-- beforehand).
WITH RECURSIVE
ordered AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY invoice_id
            ORDER BY
                list_position(['usage_discount', 'amount_discount', 'percentage_discount',
                               'minimum', 'maximum'],
                              adjustment_type),
                adjustment_id,
                source,
                line_item_ids,
                subscription_id
        ) AS position,
        count(*) OVER (PARTITION BY invoice_id) AS adjustments
    FROM adjustment_scopes
),
-- each adjustment with the positions of the earlier ones on its invoice whose lines all
-- lie within its own (lines are a subscription's, so only those of its subscription can)
nested AS (
    SELECT o.invoice_id, o.position, list(e.position) AS inner_positions
    FROM ordered AS o
    JOIN ordered AS e
        ON e.invoice_id = o.invoice_id
        AND e.subscription_id = o.subscription_id
        AND e.position < o.position
        AND list_has_all(o.line_item_ids, e.line_item_ids)
    GROUP BY o.invoice_id, o.position
),
-- one row per invoice: its adjustments in the order applied, what making each needs
invoices AS (
    SELECT
        invoice_id,
        any_value(currency_exponent) AS currency_exponent,
        any_value(adjustments) AS adjustments,
        list({
            'adjustment_type': adjustment_type,
            'parameter': parameter,
            'lines_amount': lines_amount,
            'inner_positions': coalesce(inner_positions, [])
        } ORDER BY position) AS terms
    FROM ordered
    LEFT JOIN nested USING (invoice_id, position)
    GROUP BY invoice_id
),
-- each invoice's bases and amounts made so far, one more per step; keyed by invoice, so
-- that a step replaces the invoice's row and the last step's row is what remains
made (invoice_id, steps, bases, amounts) USING KEY (invoice_id) AS (
    SELECT invoice_id, 0, CAST([] AS DECIMAL(38, 4)[]), CAST([] AS DECIMAL(38, 4)[])
    FROM invoices
    UNION
    SELECT
        invoice_id,
        steps + 1,
        list_append(bases, base),
        list_append(amounts, CASE currency_exponent
            -- one cast per branch: DuckDB may unify DECIMAL types of the same precision
            -- to the smallest scale among them, rounding the others
            WHEN 0 THEN CAST(round(unrounded, 0) AS DECIMAL(38, 4))
            WHEN 2 THEN CAST(round(unrounded, 2) AS DECIMAL(38, 4))
            WHEN 3 THEN CAST(round(unrounded, 3) AS DECIMAL(38, 4))
            WHEN 4 THEN CAST(round(unrounded, 4) AS DECIMAL(38, 4))
            ELSE error('unsupported currency exponent ' || currency_exponent)
        END)
    FROM (
        SELECT
            invoice_id,
            steps,
            bases,
            amounts,
            currency_exponent,
            base,
            CASE adjustment_type
                WHEN 'usage_discount' THEN CAST(parameter AS DECIMAL(38, 22))
                WHEN 'amount_discount' THEN CAST(
                    -least(parameter, greatest(CAST(base AS DECIMAL(38, 18)), 0))
                    AS DECIMAL(38, 22))
                WHEN 'percentage_discount' THEN CAST(-(base * parameter) AS DECIMAL(38, 22))
                WHEN 'minimum' THEN CAST(
                    greatest(parameter - CAST(base AS DECIMAL(38, 18)), 0) AS DECIMAL(38, 22))
                WHEN 'maximum' THEN CAST(
                    -greatest(CAST(base AS DECIMAL(38, 18)) - parameter, 0) AS DECIMAL(38, 22))
            END AS unrounded
        FROM (
            SELECT
                m.invoice_id,
                m.steps,
                m.bases,
                m.amounts,
                i.currency_exponent,
                i.terms[m.steps + 1].adjustment_type AS adjustment_type,
                i.terms[m.steps + 1].parameter AS parameter,
                CAST(i.terms[m.steps + 1].lines_amount
                     + coalesce(list_sum(list_select(m.amounts,
                                                     i.terms[m.steps + 1].inner_positions)), 0)
                     AS DECIMAL(38, 4)) AS base
            FROM made AS m
            JOIN invoices AS i USING (invoice_id)
            WHERE m.steps < i.adjustments
        )
    )
)
SELECT
    o.invoice_id,
    o.adjustment_id,
    o.adjustment_type,
    o.source,
    o.line_item_ids,
    m.bases[o.position] AS base,
    m.amounts[o.position] AS amount
FROM ordered AS o
JOIN made AS m USING (invoice_id)
ORDER BY o.invoice_id, o.position
