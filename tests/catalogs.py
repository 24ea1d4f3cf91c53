"""Small catalogs built in code for tests, and data folders holding them."""

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import yaml

from billing.catalog import Catalog, Customer, Subscription
from billing.charges import billing_windows
from state import AddCustomer, CreateSubscription, StateStore
from storage.settings import Settings
from storage.tables import USAGE as USAGE_SCHEMA

STATE_SECTIONS = ("customers", "subscriptions")


def write_data_dir(root: Path, data: dict) -> None:
    """``data`` (a catalog's sections) as a deployment keeps it: metrics, plans and coupons
    in ``root/catalog/catalog.yaml``, customers and subscriptions in the state store
    (``root/state.db``)."""
    folder = root / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(yaml.safe_dump(
        {k: v for k, v in data.items() if k not in STATE_SECTIONS}))
    with StateStore.open(Settings(data_dir=str(root)).state_store_url) as store:
        store.apply([AddCustomer(Customer.model_validate(c), actor="test")
                     for c in data.get("customers", [])]
                    + [CreateSubscription(Subscription.model_validate(s), actor="test")
                       for s in data.get("subscriptions", [])],
                    Catalog.model_validate({k: v for k, v in data.items()
                                            if k not in STATE_SECTIONS}))


def tiered(price_id, metric, tiers):
    return {"id": price_id, "name": price_id, "billable_metric_id": metric, "model_type": "tiered",
            "tiered_config": {"tiers": [
                {"first_unit": first, "last_unit": last, "unit_amount": amount}
                for first, last, amount in tiers]}}


def model(price_id, model_type, config, metric=None, fixed_quantity=None):
    """Any price model: a usage price on ``metric`` or a fixed fee of ``fixed_quantity``."""
    price = {"id": price_id, "name": price_id, "model_type": model_type,
             f"{model_type}_config": config}
    if metric:
        price["billable_metric_id"] = metric
    else:
        price["fixed_price_quantity"] = fixed_quantity
    return price


def unit(price_id, amount, metric=None, fixed_quantity=None):
    return model(price_id, "unit", {"unit_amount": amount}, metric, fixed_quantity)


def catalog(plans, customers, subscriptions, metrics=("calls", "tokens")):
    """``metrics``: ids (each counting events) or a mapping of id to SQL."""
    sqls = metrics if isinstance(metrics, dict) else dict.fromkeys(
        metrics, "SELECT count(*) FROM events")
    return Catalog.model_validate({
        "metrics": [{"id": m, "name": m, "sql": sql} for m, sql in sqls.items()],
        "plans": plans,
        "customers": customers,
        "subscriptions": subscriptions,
    })


def one_plan(prices, currency="USD", timezone="UTC", customers=1):
    """``customers`` customers c0.. each on plan p from 2026-01-01."""
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": currency, "prices": prices}],
        customers=[{"id": f"c{i}", "name": f"C{i}", "timezone": timezone}
                   for i in range(customers)],
        subscriptions=[{"id": f"s{i}", "customer_id": f"c{i}", "plan_id": "p",
                        "start_date": "2026-01-01"} for i in range(customers)],
    )


def usage_rows(catalog, month, quantities, metric="calls"):
    """Usage of ``metric`` for subscriptions s0.. (``quantities`` in order), keyed by each
    subscription's usage window in the run for ``month``."""
    windows = {w.subscription_id: w.window_id for w in billing_windows(catalog, month)
               if not w.in_advance}
    return pa.Table.from_pylist(
        [{"window_id": windows[f"s{i}"], "metric_id": metric, "grouping": [], "group_values": [],
          "quantity": Decimal(q)} for i, q in enumerate(quantities)], schema=USAGE_SCHEMA)
