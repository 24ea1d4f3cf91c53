-- The charges of lines priced again at a reduced quantity (a usage discount:
-- invoicing/usage_discounts.py), as rate_usage.sql's inputs. Each reduction is a charge
-- of its own: its window's window, subscription and plan ids are the reduction's id, so
-- that it is one line, of the one price, on usage of its own (the reduced quantity).
-- Tables: reductions   (reduced_id, invoice_id, window_id, plan_id, plan_version,
--                      price_id, quantity)
--         run_windows  the run's billing windows (billing/charges.py)
--         plan_prices, price_terms  the catalog's (catalog_tables.py)
-- rate_usage.sql joins a window to its prices on the price's cycle and timing, so the
-- reduction's window is each of the line's window's on that invoice; only the one of
-- the price's cycle and timing makes a line.
CREATE OR REPLACE TEMP TABLE reduced_windows AS
SELECT w.* REPLACE (r.reduced_id AS window_id, r.reduced_id AS subscription_id,
                    r.reduced_id AS plan_id)
FROM reductions AS r
JOIN run_windows AS w
    ON w.invoice_id = r.invoice_id
    AND w.window_id = r.window_id
    AND w.plan_id = r.plan_id
    AND w.plan_version = r.plan_version;

CREATE OR REPLACE TEMP TABLE reduced_prices AS
SELECT p.* REPLACE (r.reduced_id AS plan_id)
FROM reductions AS r
JOIN plan_prices AS p
    ON p.plan_id = r.plan_id
    AND p.plan_version = r.plan_version
    AND p.price_id = r.price_id;

-- the price's usage (a filtered price's own; of a price with a property filter, the one
-- group it prices) at the reduced quantity
CREATE OR REPLACE TEMP TABLE reduced_usage AS
SELECT
    r.reduced_id AS window_id,
    t.usage_metric_id AS metric_id,
    t.grouping,
    coalesce(t.filter_values, CAST([] AS VARCHAR[])) AS group_values,
    CAST(r.quantity AS DECIMAL(38, 9)) AS quantity
FROM reductions AS r
JOIN price_terms AS t ON t.price_id = r.price_id;
