"""`orb catalog import --from orb-json`: Orb API plans and prices, in the orb-billing SDK's
exact field shape (types/plan.py, types/shared/price.py), converted, loaded with the
catalog loader and priced; every field not imported listed with its file and JSON path."""

import json
from decimal import Decimal

from click.testing import CliRunner
from orb.types.plan import Plan as OrbPlan

from billing.catalog.models import Plan
from billing.catalog.orb_import import PLACEHOLDER_SQL, convert
from cli.catalog import catalog
from pricing_sql.catalog_files import load_checked_catalog
from pricing_sql.evaluate import evaluate_price

CREATED = "2026-01-05T10:00:00+00:00"
MONTHLY = {"duration": 1, "duration_unit": "month"}
ANNUAL = {"duration": 12, "duration_unit": "month"}


def orb_price(price_id, model_type, config, *, metric="m_api_calls", cadence="monthly",
              cycle=MONTHLY, fixed_price_quantity=None, **fields):
    """A price as Orb's API returns it: every field of the SDK's price types."""
    return {
        "id": price_id, "billable_metric": {"id": metric} if metric else None,
        "billing_cycle_configuration": cycle,
        "billing_mode": "in_advance" if fixed_price_quantity else "in_arrear",
        "cadence": cadence, "composite_price_filters": None, "conversion_rate": None,
        "conversion_rate_config": None, "created_at": CREATED, "credit_allocation": None,
        "currency": "USD", "discount": None, "external_price_id": None,
        "fixed_price_quantity": fixed_price_quantity, "invoice_grouping_key": None,
        "invoicing_cycle_configuration": None,
        "item": {"id": f"item_{price_id}", "name": price_id}, "maximum": None,
        "maximum_amount": None, "metadata": {}, "minimum": None, "minimum_amount": None,
        "model_type": model_type, "name": price_id.replace("_", " "),
        "plan_phase_order": None,
        "price_type": "fixed_price" if fixed_price_quantity else "usage_price",
        "replaces_price_id": None, f"{model_type}_config": config,
        "dimensional_price_configuration": None, "license_type": None, **fields,
    }


def orb_plan(plan_id, prices, adjustments=(), **fields):
    """A plan as Orb's API returns it: every field of the SDK's Plan."""
    return {
        "id": plan_id, "adjustments": list(adjustments), "base_plan": None,
        "base_plan_id": None, "created_at": CREATED, "currency": "USD",
        "default_invoice_memo": None, "description": "", "discount": None,
        "external_plan_id": None, "invoicing_currency": "USD", "maximum": None,
        "maximum_amount": None, "metadata": {}, "minimum": None, "minimum_amount": None,
        "name": plan_id.title(), "net_terms": None, "plan_phases": None, "prices": prices,
        "product": {"id": "prod_1", "created_at": CREATED, "name": "API"},
        "status": "active",
        "trial_config": {"trial_period": None, "trial_period_unit": "days"},
        "version": 1, **fields,
    }


# Units are JSON numbers in Orb's responses (first_unit: float), amounts decimal strings.
UNIT = orb_price("api_calls", "unit", {"unit_amount": "0.002"})
TIERED = orb_price("tokens", "tiered", {"tiers": [
    {"first_unit": 0.0, "last_unit": 1000.0, "unit_amount": "0.00"},
    {"first_unit": 1000.0, "last_unit": None, "unit_amount": "0.01"}]}, metric="m_tokens")
PACKAGE = orb_price("storage", "package", {"package_amount": "5.00", "package_size": 100},
                    metric="m_storage")
MATRIX = orb_price("by_region", "matrix", {
    "default_unit_amount": "0.50", "dimensions": ["region"],
    "matrix_values": [{"dimension_values": ["us"], "unit_amount": "1.00"}]})
BULK = orb_price("seats", "bulk", {"tiers": [{"maximum_units": 100.0, "unit_amount": "1.00"},
                                             {"maximum_units": None, "unit_amount": "0.50"}]},
                 metric="m_seats")
PLATFORM = orb_price("platform", "unit", {"unit_amount": "49.00"}, metric=None,
                     cadence="annual", cycle=ANNUAL, fixed_price_quantity=2.0)
COMMITMENT = {"id": "adj_min", "adjustment_type": "minimum", "applies_to_price_ids": [],
              "filters": [], "is_invoice_level": True, "item_id": "item_min",
              "minimum_amount": "100.00", "plan_phase_order": None, "reason": None,
              "replaces_adjustment_id": None}
PLAN = orb_plan("pro", [UNIT, TIERED, PACKAGE, MATRIX, BULK, PLATFORM], [COMMITMENT])


def run_import(tmp_path, *documents):
    source = tmp_path / "orb"
    source.mkdir()
    for index, document in enumerate(documents):
        (source / f"page{index}.json").write_text(json.dumps(document))
    result = CliRunner().invoke(catalog, ["import", "--from", "orb-json", str(source),
                                          "--to", str(tmp_path / "catalog")])
    return result, tmp_path / "catalog"


def test_a_plans_list_page_imports_loads_and_prices_as_worked_by_hand(tmp_path):
    result, folder = run_import(tmp_path, {"data": [PLAN], "pagination_metadata": {
        "has_more": False, "next_cursor": None}})
    assert result.exit_code == 0, result.output
    loaded = load_checked_catalog(folder)
    (plan,) = loaded.plans
    prices = {p.id: {**p.model_dump(mode="json", exclude_none=True), "currency": "USD"}
              for p in plan.prices}
    # unit: 12,345 calls x $0.002 = $24.69
    assert evaluate_price(prices["api_calls"], 12345) == Decimal("24.69")
    # tiered: 1,000 free, then 500 x $0.01 = $5.00; at the bound, nothing
    assert evaluate_price(prices["tokens"], 1500) == Decimal("5.00")
    assert evaluate_price(prices["tokens"], 1000) == Decimal("0.00")
    # package: 250 units are 3 started packages of 100, x $5.00 = $15.00
    assert evaluate_price(prices["storage"], 250) == Decimal("15.00")
    # matrix: us 3 x $1.00 + eu 2 x $0.50 (the default) = $4.00
    assert evaluate_price(prices["by_region"], [{"group": {"region": "us"}, "quantity": 3},
                                                {"group": {"region": "eu"}, "quantity": 2}]
                          ) == Decimal("4.00")
    # bulk: 150 seats all at the tier 150 falls in, $0.50 = $75.00; 100 seats at $1.00
    assert evaluate_price(prices["seats"], 150) == Decimal("75.00")
    assert evaluate_price(prices["seats"], 100) == Decimal("100.00")
    # the fixed fee: 2 x $49.00 = $98.00, annual, in advance (the catalog's default)
    platform = plan.prices[5]
    assert (platform.fixed_price_quantity, platform.cadence, platform.in_advance) == (
        Decimal(2), "annual", True)
    assert evaluate_price(prices["platform"], 2) == Decimal("98.00")
    assert plan.prices[0].cadence == "monthly"
    # the invoice-level minimum applies to every line of the plan
    (commitment,) = plan.adjustments
    assert (commitment.minimum_amount, commitment.applies_to_price_ids) == (
        Decimal("100.00"), None)
    # metrics are placeholders, and the output says so
    assert [(m.id, m.sql) for m in loaded.metrics] == [
        ("m_api_calls", PLACEHOLDER_SQL), ("m_tokens", PLACEHOLDER_SQL),
        ("m_storage", PLACEHOLDER_SQL), ("m_seats", PLACEHOLDER_SQL)]
    assert "4 PLACEHOLDER metric(s)" in result.output
    assert "wrote 1 plan(s) with 6 price(s)" in result.output
    # the items were dropped, each named with its path (one per price, one adjustment)
    assert "page0.json: data[0].prices[0].item: dropped: items are not modelled" \
        in result.output
    assert "page0.json: data[0].adjustments[0].item_id: dropped" in result.output
    assert "refused" not in result.output


def test_a_single_plan_and_loose_prices_import(tmp_path):
    result, folder = run_import(tmp_path, orb_plan("basic", [UNIT]),
                                orb_price("extra", "unit", {"unit_amount": "1.50"}))
    assert result.exit_code == 0, result.output
    plans = {p.id: p for p in load_checked_catalog(folder).plans}
    assert sorted(plans) == ["basic", "orb_prices_usd"]
    (extra,) = plans["orb_prices_usd"].prices
    # 3 x $1.50 = $4.50
    assert evaluate_price({**extra.model_dump(mode="json", exclude_none=True)}, 3) == \
        Decimal("4.50")


def test_refused_fields_are_listed_with_paths_and_nothing_is_written(tmp_path):
    converted = orb_price("credits", "unit", {"unit_amount": "1.00"}, conversion_rate=1.5)
    one_time = orb_price("setup", "unit", {"unit_amount": "99.00"}, metric=None,
                         cadence="fortnightly", fixed_price_quantity=1.0)
    newer = {**UNIT, "id": "calls2", "brand_new_field": 1}
    bad = orb_plan("bad", [UNIT, converted, one_time, newer],
                   plan_phases=[{"id": "ph", "order": 1}])
    result, folder = run_import(tmp_path, {"data": [PLAN, bad]})
    assert result.exit_code == 1
    assert not folder.exists()
    refused = sorted(line for line in result.output.splitlines() if ": refused: " in line)
    assert refused == [
        "page0.json: data[1].plan_phases: refused: plan phases are not supported; give each "
        "phase as its own plan and the subscription phases (subscriptions[].phases)",
        "page0.json: data[1].prices[1].conversion_rate: refused: a conversion rate on a "
        "price in the plan's currency USD: a converted price's currency is its custom "
        "pricing unit",
        "page0.json: data[1].prices[2].cadence: refused: cadence 'fortnightly' is not "
        "one of Orb's",
        "page0.json: data[1].prices[3].brand_new_field: refused: not a field of Orb's API "
        "this import knows; refused rather than lose a billing term",
    ]
    assert "4 field(s) refused: nothing written" in result.output


def test_one_time_and_custom_cadences_are_imported_with_their_cycle():
    setup = orb_price("setup", "unit", {"unit_amount": "500.00"}, metric=None,
                      cadence="one_time", fixed_price_quantity=1.0)
    fortnight = {"duration": 14, "duration_unit": "day"}
    biweekly = orb_price("calls", "unit", {"unit_amount": "0.10"}, cadence="custom",
                         cycle=fortnight, invoicing_cycle_configuration=fortnight)
    out = convert([("plans.json", {"data": [orb_plan("p", [setup, biweekly])]})])
    assert out.refused == []
    (plan,) = out.plans
    one, custom = Plan.model_validate(plan).prices
    assert (one.cadence, one.cycle.key, one.in_advance) == ("one_time", "one_time", True)
    assert (custom.cadence, custom.cycle.key) == ("custom", "day:14")


def test_catalog_rules_are_refused_at_the_orb_path():
    gap = orb_price("gappy", "tiered", {"tiers": [
        {"first_unit": 0.0, "last_unit": 10.0, "unit_amount": "1.00"},
        {"first_unit": 20.0, "last_unit": None, "unit_amount": "0.50"}]})
    in_advance = {**UNIT, "id": "usage_ahead", "billing_mode": "in_advance"}
    weekly = {**UNIT, "id": "weekly", "billing_cycle_configuration":
              {"duration": 7, "duration_unit": "day"}}
    moon = orb_price("moon", "tiered_by_moon", {"phases": 4})
    out = convert([("plans.json", {"data": [orb_plan("p", [gap, in_advance]),
                                            orb_plan("q", [weekly]), orb_plan("r", [moon])]})])
    assert out.plans == []
    assert [(f.path, f.reason.split(":")[0]) for f in out.refused] == [
        ("data[0].prices[0].tiered_config", "Value error, tier 1 starts at 20, but tier 0 "
                                            "ends at 10"),
        ("data[0].prices[1]", "Value error, a usage price is billed in arrears"),
        ("data[1].prices[0].billing_cycle_configuration", "a cycle of {'duration'"),
        ("data[2].prices[0].model_type", "model_type 'tiered_by_moon' is not one of the "
                                         "price models (docs/pricing.md#price-models)"),
    ]


def test_unreadable_json_is_refused_with_its_line(tmp_path):
    source = tmp_path / "orb"
    source.mkdir()
    (source / "plans.json").write_text('{"data": [\n  {"id": }\n]}')
    result = CliRunner().invoke(catalog, ["import", "--from", "orb-json", str(source),
                                          "--to", str(tmp_path / "catalog")])
    assert result.exit_code == 1
    assert "plans.json: line 2: refused: not JSON" in result.output
    assert not (tmp_path / "catalog").exists()


def test_legacy_minimums_are_dropped_as_copies_of_adjustments_and_refused_otherwise():
    on_calls = {**COMMITMENT, "id": "adj_calls", "is_invoice_level": False,
                "applies_to_price_ids": ["api_calls"], "minimum_amount": "20.00"}
    legacy = {"applies_to_price_ids": [], "filters": [], "minimum_amount": "100.00"}
    copied = orb_plan("copied", [{**UNIT, "minimum_amount": "20.00"}], [COMMITMENT, on_calls],
                      minimum=legacy, minimum_amount="100.00")
    own = orb_plan("own", [{**TIERED, "minimum_amount": "20.00"}], maximum_amount="500.00")
    out = convert([("plans.json", {"data": [copied, own]})])
    assert [(f.path, f.refused) for f in out.findings if "legacy" in f.reason] == [
        ("data[0].minimum", False), ("data[0].minimum_amount", False),
        ("data[0].prices[0].minimum_amount", False),
        ("data[1].maximum_amount", True), ("data[1].prices[0].minimum_amount", True)]
    (plan,) = out.plans
    assert plan["id"] == "copied"
    assert plan["adjustments"] == [
        {"id": "adj_min", "adjustment_type": "minimum", "minimum_amount": "100.00"},
        {"id": "adj_calls", "adjustment_type": "minimum", "minimum_amount": "20.00",
         "applies_to_price_ids": ["api_calls"]}]


def test_a_loose_price_is_checked_at_its_own_path():
    bad = orb_price("odd", "unit", {"unit_amount": "0.0000000000001"})
    out = convert([("price.json", bad)])
    assert out.plans == []
    assert [f.path for f in out.refused] == ["$.unit_config.unit_amount"]


def test_the_fixtures_have_exactly_the_sdk_fields():
    """The JSON above is what the orb-billing SDK's types read, every field and no more,
    so the import is tested on Orb's shape rather than on a guess of it."""
    def fields(model):
        return {f.alias or name for name, f in type(model).model_fields.items()}

    plan = OrbPlan.model_validate(PLAN)
    assert fields(plan) == set(PLAN)
    assert [type(p).__name__ for p in plan.prices] == [
        "UnitPrice", "TieredPrice", "PackagePrice", "MatrixPrice", "BulkPrice", "UnitPrice"]
    assert [fields(p) for p in plan.prices] == [set(p) for p in PLAN["prices"]]
    assert fields(plan.adjustments[0]) == set(COMMITMENT)
