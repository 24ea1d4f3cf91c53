"""Rating that one customer's values cannot stop for everyone.

Ingestion keeps every number a metric reads below ``metrics.PROPERTY_LIMIT``, so
aggregating properties cannot overflow. A rating query can still raise for some input: a
metric's own arithmetic (``sum(properties.a * properties.b)``), a quantity whose amount
passes DECIMAL(38, 21) (10^17 at a unit price of 1), or a lake written before ingestion
checked the limit. The run then does not fail for everyone: the customers on whom the
query raises are found by halving (rate half of the customers, then each half of any
part that raises, down to one customer), left out of the month and reported with the
error and the events found to cause it (``exclusions_table``, the lake's
``rating_exclusions``); every other customer is rated as usual.

The normal path is the one query it always was: this costs nothing until a query
raises, then about 2 log2(customers) queries per customer left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from pricing_sql.engine import Engine
from pricing_sql.metrics import beyond_limit
from pricing_sql.sql import load_sql
from storage.tables import RATING_EXCLUSIONS

# Rating that raises for more customers than this is not a few bad events but a metric
# or price that fails on most values: the run fails, naming the first of them.
MAX_EXCLUDED = 100
MAX_EVENTS = 10  # the events named per customer left out
USAGE_STEP, PRICING_STEP = "usage", "line_items"  # where a customer's rating raised

T = TypeVar("T")


class RatingError(RuntimeError):
    """Rating raised for more customers than a few bad events explain."""


def failing(items: Sequence[str], attempt: Callable[[list[str]], object],
            errors: tuple[type[Exception], ...], limit: int) -> dict[str, str]:
    """Up to ``limit`` of ``items`` on which ``attempt`` raises one of ``errors`` on its
    own, each with the error's first line: ``attempt`` runs on all of them, then on each
    half of any part that raised, first halves first."""
    found: dict[str, str] = {}
    parts = [list(items)]
    while parts and len(found) < limit:
        part = parts.pop()
        try:
            attempt(part)
        except errors as error:
            if len(part) == 1:
                found[part[0]] = str(error).strip().partition("\n")[0] or repr(error)
            else:
                half = len(part) // 2
                parts += [part[half:], part[:half]]
    return found


def rate_apart(rate: Callable[[list[str] | None], T], customers: Callable[[], list[str]],
               errors: tuple[type[Exception], ...]) -> tuple[T, dict[str, str]]:
    """``rate(None)`` (every customer at once) and no failures; or, when that raises one
    of ``errors``, ``rate`` of the customers on whom it does not raise, and the error of
    each one on whom it does."""
    try:
        return rate(None), {}
    except errors:
        pass  # some customer's values overflow or do not convert: find whose
    everyone = customers()
    failures = failing(everyone, rate, errors, MAX_EXCLUDED + 1)
    if len(failures) > MAX_EXCLUDED:
        first, error = next(iter(failures.items()))
        raise RatingError(
            f"rating fails for more than {MAX_EXCLUDED} customers, so it is not a few bad "
            f"events but a metric or price that fails on most values: check the catalog "
            f"(first: customer {first!r}: {error})")
    return rate([c for c in everyone if c not in failures]), failures


def customer_list(customers: Sequence[str]) -> pa.Table:
    return pa.table({"customer_id": pa.array(customers, pa.string())})


def poison_events(engine: Engine, numeric_keys: list[str], customers: Sequence[str],
                  fails_alone: Callable[[str], object] | None = None) -> dict[str, list[str]]:
    """The idempotency keys of the events in ``customers``' windows that make their
    rating fail, at most MAX_EVENTS each, in key order: those with a property a metric
    reads as a number beyond the limit (a lake written before ingestion checked it);
    for a customer with none, and given ``fails_alone`` (rate the view ``single_events``
    of the event given), the events on which rating raises on their own (a metric's own
    arithmetic). Events that overflow only together name none.
    Needs ``active_events`` and ``usage_windows`` (usage_events.sql)."""
    found: dict[str, list[str]] = {customer: [] for customer in customers}
    if not customers:
        return found
    _events_of(engine, customers, [])
    if numeric_keys:
        beyond = (exp.select("customer_id", "window_id").from_("customer_events")
                  .where(exp.or_(*(beyond_limit(key) for key in numeric_keys)))
                  .order_by("customer_id", "window_id"))
        rows = engine.query(beyond)
        for customer, key in zip(rows["customer_id"].to_pylist(),
                                 rows["window_id"].to_pylist(), strict=True):
            if len(found[customer]) < MAX_EVENTS:
                found[customer].append(key)
    for customer in [c for c, keys in found.items() if not keys and fails_alone]:
        assert fails_alone is not None
        _events_of(engine, [customer], [])
        keys = engine.query(exp.select("window_id").from_("customer_events")
                            .order_by("window_id"))["window_id"].to_pylist()

        def alone(part: list[str], customer: str = customer) -> object:
            _events_of(engine, [customer], part)
            return fails_alone("single_events")

        found[customer] = sorted(failing(keys, alone, engine.arithmetic_errors, MAX_EVENTS))
    return found


def _events_of(engine: Engine, customers: Sequence[str], keys: list[str]) -> None:
    """Views ``customer_events`` and ``single_events`` (single_events.sql), made again
    each time: a Spark view keeps the tables it was made from."""
    engine.register("subset_customers", customer_list(customers))
    engine.register("subset_keys", pa.table({"idempotency_key": pa.array(keys, pa.string())}))
    engine.run_script(load_sql("single_events"))


def customers_of(exclusions: pa.Table) -> set[str]:
    return set(exclusions["customer_id"].to_pylist())


def usage_step(exclusions: pa.Table) -> pa.Table:
    """The rows the usage step wrote: pricing again replaces the rows pricing wrote."""
    return exclusions.filter(pc.equal(exclusions["step"], USAGE_STEP)).cast(RATING_EXCLUSIONS)


def exclusions_table(step: str, failures: dict[str, str],
                     events: dict[str, list[str]]) -> pa.Table:
    """``rating_exclusions`` rows: each customer left out at ``step``, with the error and
    the events found to cause it."""
    return pa.Table.from_pylist(
        [{"customer_id": customer, "step": step, "error": error,
          "idempotency_keys": events.get(customer, [])}
         for customer, error in sorted(failures.items())], schema=RATING_EXCLUSIONS)

