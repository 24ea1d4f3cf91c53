"""Price-level features of Orb's prices, beyond the model: a price's ``filter`` on its
metric's events, ``per_unit_maximum`` on the bps models, ``invoice_grouping_key``,
custom pricing units with a ``conversion_rate``, and the Orb import keeping them.
Amounts worked out by hand in the comments (docs/pricing.md#price-level-features)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from billing.catalog import CatalogError, Plan
from billing.catalog.orb_import import convert
from billing.catalog.prices import Price
from ingestion.batches import ingest_files
from pricing_sql.catalog_files import load_checked_catalog
from pricing_sql.catalog_tables import price_terms_table
from pricing_sql.evaluate import evaluate_price
from pricing_sql.rating import compute_usage, price_line_items
from pricing_sql.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch
from tests.catalogs import catalog, model, unit

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 10, tzinfo=UTC)
TOKENS = "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'"
US = "properties.region = 'us'"


def completion(key, tokens, region=None, day=5):
    properties = {"tokens": tokens, **({"region": region} if region else {})}
    return {"event_name": "completion", "timestamp": f"2026-10-{day:02d}T12:00:00Z",
            "customer_id": "c1", "idempotency_key": key, "properties": properties}


# c1's October: us 10 and 5 tokens, eu 20 and 3, 7 with no region; 45 in all
EVENTS = [completion("a", 10, "us"), completion("b", 5, "us", day=9),
          completion("c", 20, "eu"), completion("d", 3, "eu", day=20), completion("e", 7)]


def shop(prices):
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": prices}],
        customers=[{"id": "c1", "name": "c1"}],
        subscriptions=[{"id": "s1", "customer_id": "c1", "plan_id": "p",
                        "start_date": "2026-01-01"}],
        metrics={"tokens": TOKENS})


def rated(tmp_path, prices, events=EVENTS):
    """(usage rows, line amounts by price id) of October for ``prices`` over ``events``."""
    cat = shop(prices)
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl", *events)], NOW)
    usage = compute_usage(connect(), lake, cat, OCTOBER).usage
    priced = price_line_items(connect(), cat, OCTOBER, usage)
    return (usage.to_pylist(),
            {line["price_id"]: line for line in priced.line_items.to_pylist()})


# ---- filter ----------------------------------------------------------------------------


def test_a_filtered_price_rates_only_the_events_its_filter_selects(tmp_path):
    prices = [unit("all", "0.01", metric="tokens"),
              {**unit("us_only", "0.10", metric="tokens"), "filter": US},
              {**unit("big_eu", "1.00", metric="tokens"),
               "filter": "properties.region = 'eu' AND properties.tokens > 5"}]
    usage, lines = rated(tmp_path, prices)
    # all 45 tokens x 0.01 = 0.45; us 10 + 5 = 15 x 0.10 = 1.50; eu above 5 tokens: 20 x 1.00
    assert {p: (line["quantity"], line["amount"]) for p, line in lines.items()} == {
        "all": (45, Decimal("0.45")), "us_only": (15, Decimal("1.50")),
        "big_eu": (20, Decimal("20.00"))}
    # each filtered price has a usage of its own, keyed by its metric and filter
    assert sorted((row["metric_id"], row["quantity"]) for row in usage) == [
        ("tokens", 45),
        ("tokens WHERE properties.region = 'eu' AND properties.tokens > 5", 20),
        ("tokens WHERE properties.region = 'us'", 15)]
    # the line still names the metric it bills
    assert lines["us_only"]["billable_metric_id"] == "tokens"


def test_the_line_usage_check_reads_a_filtered_prices_own_usage(tmp_path):
    prices = [unit("all", "0.01", metric="tokens"),
              {**unit("us_only", "0.10", metric="tokens"), "filter": US}]
    cat = shop(prices)
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl", *EVENTS)], NOW)
    usage = compute_usage(connect(), lake, cat, OCTOBER).usage
    lines = price_line_items(connect(), cat, OCTOBER, usage).line_items

    def failures(line_items):
        con = connect()
        for name, table in (("usage", usage), ("line_items", line_items),
                            ("price_terms", price_terms_table(cat))):
            con.register(name, table)
        return [row[1:] for row in con.sql(load_sql("check_line_usage")).fetchall()]

    assert failures(lines) == []  # 45 and 15, as billed
    # a line billed for the metric's whole usage instead of its filter's is found
    wrong = [{**line, "quantity": Decimal(45)} if line["price_id"] == "us_only" else line
             for line in lines.to_pylist()]
    assert failures(pa.Table.from_pylist(wrong, schema=lines.schema)) == [(45, 15)]


def test_a_filter_narrows_the_events_a_grouped_price_groups(tmp_path):
    prices = [{**model("by_region", "grouped_tiered", {
        "grouping_key": "region", "tiers": [{"tier_lower_bound": "0", "unit_amount": "1.00"},
                                            {"tier_lower_bound": "10", "unit_amount": "0.50"}]},
        metric="tokens"), "filter": "properties.tokens >= 5"}]
    _, lines = rated(tmp_path, prices)
    # events of 5 tokens or more: us 10 + 5 = 15, eu 20, none 7 (the 3 is left out)
    # us 10 x 1.00 + 5 x 0.50 = 12.50; eu 10 + 10 x 0.50 = 15.00; none 7 x 1.00 = 7.00
    assert (lines["by_region"]["quantity"], lines["by_region"]["amount"]) == (
        42, Decimal("34.50"))


def test_a_filter_that_selects_nothing_bills_zero(tmp_path):
    _, lines = rated(tmp_path, [{**unit("apac", "1.00", metric="tokens"),
                                 "filter": "properties.region = 'apac'"}])
    assert (lines["apac"]["quantity"], lines["apac"]["amount"]) == (0, Decimal("0.00"))


def write_catalog(folder, price):
    folder.mkdir()
    (folder / "catalog.yaml").write_text(yaml.safe_dump({
        "metrics": [{"id": "tokens", "name": "Tokens", "sql": TOKENS}],
        "plans": [{"id": "p", "name": "P", "currency": "USD",
                   "prices": [unit("all", "0.01", metric="tokens"), price]}]},
        sort_keys=False))
    return folder


@pytest.mark.parametrize(("filter_sql", "reason"), [
    ("read_parquet('x') = 1", "line 1, column 1: function read_parquet is not allowed in a "
                              "metric"),
    ("properties.region", "line 1, column 12: a filter is one condition on the events, "
                          "such as properties.region = 'us'"),
    ("1 = 1; DROP TABLE events", "a filter is one condition on the events"),
    ("sum(properties.tokens) > 5", "line 1, column 1: aggregates are not allowed in WHERE"),
    ("region = 'us'", "line 1, column 1: unknown column region"),
    # passes the checks, fails where DuckDB binds it: found by the trial run
    ("timestamp > 5", "does not run: "),
])
def test_a_bad_filter_is_refused_at_load_naming_file_line_and_price(tmp_path, filter_sql,
                                                                    reason):
    folder = write_catalog(tmp_path / "catalog",
                           {**unit("us_only", "0.10", metric="tokens"), "filter": filter_sql})
    with pytest.raises(CatalogError) as error:
        load_checked_catalog(folder)
    # the line of plans[0].prices[1].filter in the file as written
    lines = (folder / "catalog.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if text.strip().startswith("filter:"))
    (problem,) = error.value.problems
    assert problem.startswith(f"catalog.yaml:{line}: plans[0].prices[1].filter: price "
                              f"'us_only': {reason}")


def test_a_good_filter_loads(tmp_path):
    folder = write_catalog(tmp_path / "catalog",
                           {**unit("us_only", "0.10", metric="tokens"), "filter": US})
    (_, price) = load_checked_catalog(folder).plans[0].prices
    assert (price.filter, price.usage_metric_id) == (US, f"tokens WHERE {US}")


def test_only_a_usage_price_takes_a_filter():
    with pytest.raises(ValidationError, match="a fixed fee has none"):
        TypeAdapter(Price).validate_python({**unit("fee", "10", fixed_quantity=1),
                                            "filter": US})
    with pytest.raises(ValidationError, match="billed_in_advance, filter or conversion rate"):
        TypeAdapter(Price).validate_python({**model("pct", "percent", {"percent": "0.1"}),
                                            "filter": US})


# ---- per_unit_maximum -------------------------------------------------------------------

PAYMENTS = "SELECT sum(properties.amount) FROM events WHERE event_name = 'payment'"


def payment(key, amount, customer="c1"):
    return {"event_name": "payment", "timestamp": "2026-10-07T12:00:00Z",
            "customer_id": customer, "idempotency_key": key, "properties": {"amount": amount}}


def payments_rated(tmp_path, prices, events):
    cat = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": prices}],
        customers=[{"id": c, "name": c} for c in ("c1", "c2")],
        subscriptions=[{"id": f"s_{c}", "customer_id": c, "plan_id": "p",
                        "start_date": "2026-01-01"} for c in ("c1", "c2")],
        metrics={"payments": PAYMENTS})
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl", *events)], NOW)
    usage = compute_usage(connect(), lake, cat, OCTOBER).usage
    priced = price_line_items(connect(), cat, OCTOBER, usage)
    return ({(line["customer_id"], line["price_id"]): (line["quantity"], line["amount"])
             for line in priced.line_items.to_pylist()}, priced.sub_line_items.to_pylist())


# c1 pays 100.00, 1000.00, 2000.00, 880.00 and 37.40 (4017.40 in all); c2 100.00 and 500.00
PAYMENT_EVENTS = [payment("a", "100.00"), payment("b", "1000.00"), payment("c", "2000.00"),
                  payment("d", "880.00"), payment("e", "37.40"),
                  payment("f", "100.00", "c2"), payment("g", "500.00", "c2")]


def test_per_unit_maximum_caps_each_events_bps_fee(tmp_path):
    capped = model("take", "bps", {"bps": "125", "per_unit_maximum": "11.00"}, metric="payments")
    plain = model("plain", "bps", {"bps": "125"}, metric="payments")
    lines, breakdown = payments_rated(tmp_path, [capped, plain], PAYMENT_EVENTS)
    # c1 at 1.25%: 1.25 + 12.50 -> 11 + 25.00 -> 11 + 11.00 (880 x 0.0125 is the cap
    # itself) + 0.4675 = 34.7175 -> 34.72; uncapped 4017.40 x 0.0125 = 50.2175 -> 50.22
    # c2: 1.25 + 6.25 = 7.50, no event reaches the cap
    assert lines == {("c1", "take"): (Decimal("4017.40"), Decimal("34.72")),
                     ("c1", "plain"): (Decimal("4017.40"), Decimal("50.22")),
                     ("c2", "take"): (600, Decimal("7.50")),
                     ("c2", "plain"): (600, Decimal("7.50"))}
    # the breakdown keeps the volume and the rate; its amount is the capped one
    (row,) = [r for r in breakdown if r["line_item_id"].startswith("s_c1:take")]
    assert (row["quantity"], row["unit_amount"], row["amount"]) == (
        Decimal("4017.40"), Decimal("0.0125"), Decimal("34.7175"))


def test_per_unit_maximum_on_bulk_bps_caps_at_the_reached_tiers_maximum(tmp_path):
    bulk = model("bulk", "bulk_bps", {"tiers": [
        {"maximum_amount": "1000", "bps": "125", "per_unit_maximum": "11.00"},
        {"maximum_amount": None, "bps": "100", "per_unit_maximum": "5.00"}]},
        metric="payments")
    lines, _ = payments_rated(tmp_path, [bulk], PAYMENT_EVENTS)
    # c1: 4017.40 is in the second tier, 1% capped at 5 per event:
    # 1.00 + 10.00 -> 5 + 20.00 -> 5 + 8.80 -> 5 + 0.374 = 16.374 -> 16.37
    # c2: 600 is in the first tier, 1.25% capped at 11: 1.25 + 6.25 = 7.50
    assert lines == {("c1", "bulk"): (Decimal("4017.40"), Decimal("16.37")),
                     ("c2", "bulk"): (600, Decimal("7.50"))}


def test_a_capped_fee_is_never_below_zero_and_zero_without_payments(tmp_path):
    capped = model("take", "bps", {"bps": "125", "per_unit_maximum": "11.00"}, metric="payments")
    # c1: 1000.00 (fee 12.50, capped to 11) and a refund of -990.00 (-12.375): a volume of
    # 10.00 whose capped fees add up to 11 - 12.375 = -1.375, billed as 0; c2: no payments
    lines, _ = payments_rated(tmp_path, [capped], [payment("a", "1000.00"),
                                                   payment("b", "-990.00")])
    assert lines == {("c1", "take"): (10, Decimal("0.00")), ("c2", "take"): (0, Decimal("0.00"))}


def test_per_unit_maximum_needs_a_metric_that_sums_each_events_volume(tmp_path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "catalog.yaml").write_text(yaml.safe_dump({
        "metrics": [{"id": "count", "name": "Count", "sql": "SELECT count(*) FROM events"}],
        "plans": [{"id": "p", "name": "P", "currency": "USD", "prices": [model(
            "take", "bps", {"bps": "125", "per_unit_maximum": "11.00"}, metric="count")]}]},
        sort_keys=False))
    with pytest.raises(CatalogError) as error:
        load_checked_catalog(folder)
    lines = (folder / "catalog.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if "bps_config:" in text)
    assert error.value.problems == [
        f"catalog.yaml:{line}: plans[0].prices[0].bps_config: price 'take': line 1, column 8: "
        "per_unit_maximum caps each event's fee, so the metric must add up each event's "
        "volume, sum(<value>), not COUNT(*)"]


@pytest.mark.parametrize(("price", "message"), [
    (model("t", "tiered_bps", {"tiers": [{"minimum_amount": "0", "bps": "125",
                                          "per_unit_maximum": "11"}]}, metric="payments"),
     "not supported on tiered_bps: an event's volume can fall in two tiers"),
    (model("t", "bps", {"bps": "125", "per_unit_maximum": "11"}, fixed_quantity=1),
     "a fixed fee has no events"),
    (model("t", "bps", {"bps": "125", "per_unit_maximum": "0"}, metric="payments"),
     "greater than 0"),
])
def test_per_unit_maximum_refusals(price, message):
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(Price).validate_python(price)


def test_evaluate_price_refuses_a_cap_per_event():
    with pytest.raises(ValueError, match="needs event-level rating: a price evaluated for a "
                                         "total quantity has no events"):
        evaluate_price({"model_type": "bps", "bps_config": {"bps": "125",
                                                            "per_unit_maximum": "11"}}, 100)


# ---- invoice_grouping_key ----------------------------------------------------------------


def test_the_invoice_grouping_key_is_carried_to_each_line(tmp_path):
    prices = [{**unit("us", "0.10", metric="tokens"), "filter": US,
               "invoice_grouping_key": "api"},
              {**unit("all", "0.01", metric="tokens"), "invoice_grouping_key": "api"},
              {**unit("platform", "49.00", fixed_quantity=1)}]
    _, lines = rated(tmp_path, prices)
    assert {p: (line["invoice_grouping_key"], line["amount"]) for p, line in lines.items()} == {
        "us": ("api", Decimal("1.50")),  # 15 x 0.10
        "all": ("api", Decimal("0.45")),  # 45 x 0.01
        "platform": (None, Decimal("49.00"))}


# ---- conversion_rate: custom pricing units -----------------------------------------------

CREDITS = {"currency": "credits", "conversion_rate": "0.125"}  # $0.125 per credit


def test_a_price_in_credits_is_rated_in_the_plans_currency_and_rounded_once(tmp_path):
    prices = [{**model("tiered", "tiered", {"tiers": [
        {"first_unit": 0, "last_unit": 10, "unit_amount": "2"},
        {"first_unit": 10, "last_unit": None, "unit_amount": "1"}]}, metric="tokens"),
        **CREDITS},
        {**unit("unit", "0.3", metric="tokens"), **CREDITS},
        {**model("floor", "tiered_with_minimum", {"tiers": [
            {"tier_lower_bound": "0", "unit_amount": "1", "minimum_amount": "100"}]},
            metric="tokens"), **CREDITS},
        {**unit("seat", "100", fixed_quantity=1), "currency": "credits",
         "conversion_rate_config": {"conversion_rate_type": "unit",
                                    "unit_config": {"unit_amount": "0.5"}}}]
    cat = shop(prices)
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl", *EVENTS)], NOW)
    priced = price_line_items(connect(), cat, OCTOBER,
                              compute_usage(connect(), lake, cat, OCTOBER).usage)
    # the seat is billed in advance: the October run bills November's
    lines = {line["price_id"]: line for line in priced.line_items.to_pylist()}
    assert {p: (line["currency"], line["precise_amount"], line["amount"])
            for p, line in lines.items()} == {
        # 45 tokens: 10 x 2 + 35 x 1 = 55 credits x 0.125 = 6.875 -> $6.88
        "tiered": ("USD", Decimal("6.875"), Decimal("6.88")),
        # 45 x 0.3 = 13.5 credits x 0.125 = 1.6875 -> $1.69
        "unit": ("USD", Decimal("1.6875"), Decimal("1.69")),
        # 45 credits, raised to the 100-credit minimum: 100 x 0.125 = $12.50
        "floor": ("USD", Decimal("12.5"), Decimal("12.50")),
        # 1 seat x 100 credits x $0.50 = $50.00
        "seat": ("USD", Decimal("50"), Decimal("50.00"))}
    # the breakdown is in the plan's currency too: the rates converted, and it adds up
    tiers = [(r["unit_amount"], r["amount"]) for r in priced.sub_line_items.to_pylist()
             if r["line_item_id"] == lines["tiered"]["line_item_id"]]
    assert tiers == [(Decimal("0.25"), Decimal("2.5")), (Decimal("0.125"), Decimal("4.375"))]


@pytest.mark.parametrize(("price", "currency", "message"), [
    ({**unit("u", "1", metric="tokens"), "currency": "credits"}, "USD",
     "price 'u' is in credits, not the plan's USD: give its conversion_rate"),
    ({**unit("u", "1", metric="tokens"), "currency": "USD", "conversion_rate": "0.1"}, "USD",
     "has a conversion_rate but is in the plan's currency USD"),
    ({**unit("u", "0.000000000003", metric="tokens"), **CREDITS}, "USD",
     "a rate 3.75E-13 x conversion_rate needs more than 12 decimal places"),
    ({**unit("u", "1", metric="tokens"), "currency": "credits",
      "conversion_rate_config": {"conversion_rate_type": "tiered", "tiered_config": {}}}, "USD",
     "a tiered conversion rate is not supported"),
    ({**unit("u", "1", metric="tokens"), "currency": "credits", "conversion_rate": "0.1",
      "conversion_rate_config": {"conversion_rate_type": "unit",
                                 "unit_config": {"unit_amount": "0.2"}}}, "USD",
     "conversion_rate 0.1 and conversion_rate_config's 0.2 differ"),
    ({**model("pct", "percent", {"percent": "0.1"}), **CREDITS}, "USD",
     "takes no billable_metric_id, fixed_price_quantity, billed_in_advance, filter or "
     "conversion rate"),
])
def test_custom_pricing_unit_refusals(price, currency, message):
    with pytest.raises(ValidationError, match=message):
        Plan.model_validate({"id": "p", "name": "P", "currency": currency, "prices": [price]})


def test_evaluate_price_converts_to_the_invoicing_currency():
    price = {"model_type": "unit", "unit_config": {"unit_amount": "3"}, **CREDITS,
             "invoicing_currency": "EUR"}
    # 7 x 3 = 21 credits x 0.125 = 2.625 -> EUR 2.63
    assert evaluate_price(price, 7) == Decimal("2.63")


# ---- Orb import ---------------------------------------------------------------------------


def test_orb_import_keeps_the_price_level_fields_it_bills():
    price = {"id": "us_calls", "name": "US calls", "model_type": "bps", "cadence": "monthly",
             "currency": "USD", "billable_metric": {"id": "calls"}, "filter": US,
             "invoice_grouping_key": "api",
             "bps_config": {"bps": 125, "per_unit_maximum": "11.00"}}
    conversion = convert([("prices.json", {"data": [price]})])
    assert conversion.findings == []
    (imported,) = conversion.plans[0]["prices"]
    assert (imported["filter"], imported["invoice_grouping_key"], imported["bps_config"]) == (
        US, "api", {"bps": 125, "per_unit_maximum": "11.00"})


def test_orb_import_keeps_a_custom_pricing_unit_and_its_rate():
    price = {"id": "credits", "name": "Credits", "model_type": "unit", "cadence": "monthly",
             "currency": "credits", "conversion_rate": 0.125,
             "billable_metric": {"id": "calls"}, "unit_config": {"unit_amount": "3"}}
    plan = {"id": "p", "name": "P", "currency": "USD", "prices": [price]}
    conversion = convert([("plans.json", {"data": [plan]})])
    assert conversion.findings == []
    (imported,) = conversion.plans[0]["prices"]
    # the float 0.125 read by its shortest repr, written as a decimal string
    assert (imported["currency"], imported["conversion_rate"]) == ("credits", "0.125")
