"""Rollup rows with a slot per hour of a day (hour rollups) or per day of a month (month
compactions): one row per request, customer, group values and distinct values, where the
per-hour or per-day rollups hold one per bucket.

Each row keeps what rating needs to take any range of its slots back out: a bit per slot
on which it had rows, and each other partial as a list with a value per slot (that
bucket's partials combined, as ``Partial.combined``). A ``count(DISTINCT x)`` row counts
for a window if a bit in its range is set; a sum is the sum of the range's values, a min
their min (``sliced_rows``). So the usage is the same as from one row per bucket, value
for value (tests/test_rollups.py checks it with hypothesis), from fewer rows: the edge
days of 10,000 customers' windows held 3.9M hour rows, 0.73M as slotted rows
(docs/capacity.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from pricing_sql.metrics import DIALECT, union_all
from pricing_sql.sql import load_sql

if TYPE_CHECKING:  # rollups.py builds its rollups with this module
    from pricing_sql.rollups import Partial, RollupSpec

# Reduced over a window's slots: a count's and a sum's values are summed, as combined.
LIST_REDUCTIONS: dict[type[exp.Expr], str] = {
    exp.Count: "list_sum", exp.Sum: "list_sum", exp.Min: "list_min", exp.Max: "list_max"}


def slotted_query(spec: RollupSpec, source: str, first: exp.Expr, slots: int,
                  names: tuple[str, str], where: exp.Expr | None = None) -> exp.Query:
    """Rows of ``source``'s per-bucket rollup rows (``where`` keeps), per request,
    customer, group values, distinct values and ``first``, the first bucket of the row's
    ``slots`` (an expression of ``bucket``): the bits of the slots that had rows and each
    other partial's value per slot. ``names``: the columns of ``first`` and of the bits."""
    slot = exp.paren(exp.Sub(this=exp.column("bucket"), expression=first.copy()))
    first_name, bits_name = names
    selects = []
    for rolled in spec.requests:
        distinct = [p for p in rolled.partials if p.distinct]
        columns: list[exp.Expr] = []
        for p in spec.columns:
            if p.distinct:
                value = exp.column(p.column) if p in distinct else exp.cast(exp.null(), p.type)
            elif p in rolled.partials:
                value = exp.cast(exp.Array(expressions=[
                    _in_slot(p.combined(), slot.eq(exp.Literal.number(i)))
                    for i in range(slots)]), f"{p.type}[]")
            else:
                value = exp.cast(exp.null(), f"{p.type}[]")
            columns.append(exp.alias_(value, p.column))
        bits = exp.func("bit_or", exp.BitwiseLeftShift(
            this=exp.cast(exp.Literal.number(1), "BIGINT"),
            expression=exp.cast(slot.copy(), "BIGINT")))
        keys = [exp.column("request"), exp.column("customer_id"), exp.column("group_values"),
                *(exp.column(p.column) for p in distinct)]
        kept = exp.column("request").eq(exp.Literal.number(rolled.index))
        selects.append(
            exp.select(*keys[:3], *columns, exp.alias_(first.copy(), first_name),
                       exp.alias_(bits, bits_name))
            .from_(source)
            .where(kept if where is None else exp.and_(kept, where.copy()))
            .group_by(*keys, first.copy()))
    order = ["request", "customer_id", first_name, "group_values",
             *(p.column for p in spec.columns if p.distinct)]
    return exp.select("*").from_(union_all(selects).subquery("slotted")).order_by(*order)


def _in_slot(combined: exp.Expr, slot: exp.Expr) -> exp.Expr:
    """``combined`` (a partial's aggregate, maybe inside a cast) over one slot's rows."""
    return combined.transform(lambda node: exp.Filter(this=node, expression=exp.Where(
        this=slot.copy())) if isinstance(node, exp.AggFunc) else node)


def sliced_rows(spec: RollupSpec, view: str) -> str:
    """The ``view`` (``rolled_month_rows.sql``, ``rolled_hour_rows.sql``), which keeps each
    slotted row a window reads with the window's range [lo, hi) of its slots, with each
    partial over that range appended to its SELECT, in the rollups' column order
    (rolled_rows.sql appends its rows to theirs)."""
    statement = sqlglot.parse_one(load_sql(view), read=DIALECT)
    select = statement.expression
    lo, hi = exp.column("lo"), exp.column("hi")
    for p in spec.columns:
        column = exp.column(p.column, "r")
        value = column if p.distinct else reduced(p, exp.func("list_slice", column, lo + 1, hi))
        select.select(exp.alias_(value, p.column), copy=False)
    return statement.sql(dialect=DIALECT)


def reduced(p: Partial, values: exp.Expr) -> exp.Expr:
    """A (not distinct) partial's slot ``values``, a list, combined as one partial."""
    return exp.cast(exp.func(LIST_REDUCTIONS[type(p.aggregate)], values), p.type)
