"""Every price model against amounts worked out by hand or published in Orb's docs.

The amounts run through ``evaluate_price``, i.e. the pipeline's own line_items.sql.
"""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.catalog.loader import CatalogError, parse_catalog
from cli.main import main
from ingestion.batches import ingest_files
from pricing_sql.evaluate import evaluate_price, price_breakdown
from pricing_sql.rating import compute_usage, price_line_items
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch
from tests.catalogs import catalog


def price(model_type, **config):
    return {"model_type": model_type, f"{model_type}_config": config}


def groups(**quantities):
    """Usage rows grouped by one property, ``region``."""
    return [{"group": {"region": region}, "quantity": q} for region, q in quantities.items()]


ORB_TIERED = price("tiered", tiers=[
    {"first_unit": 0, "last_unit": 10000, "unit_amount": "0.001"},
    {"first_unit": 10000, "last_unit": 100000, "unit_amount": "0.0008"},
    {"first_unit": 100000, "last_unit": None, "unit_amount": "0.0005"},
])
ORB_BULK = price("bulk", tiers=[{"maximum_units": 10, "unit_amount": "0.50"},
                                {"maximum_units": 1000, "unit_amount": "0.40"}])
PACKAGE = price("package", package_amount="1.00", package_size=10)
THRESHOLDS = price("threshold_total_amount", consumption_table=[
    {"threshold": "100", "total_amount": "50.00"},
    {"threshold": "1000", "total_amount": "300.00"},
])
TIERED_PACKAGE = price("tiered_package", package_size="10", tiers=[
    {"tier_lower_bound": "0", "per_unit": "5.00"},
    {"tier_lower_bound": "100", "per_unit": "4.00"},
])
WITH_MINIMUM = price("tiered_with_minimum", tiers=[
    {"tier_lower_bound": "0", "unit_amount": "1.00", "minimum_amount": "10.00"},
    {"tier_lower_bound": "50", "unit_amount": "0.50", "minimum_amount": "60.00"},
])
WITH_ALLOCATION = price("package_with_allocation", allocation="100", package_amount="2.00",
                        package_size="10")
BULK_BPS = price("bulk_bps", tiers=[{"maximum_amount": "1000000.00", "bps": 125},
                                    {"maximum_amount": None, "bps": 115}])
TIERED_BPS = price("tiered_bps", tiers=[
    {"minimum_amount": "0", "maximum_amount": "1000000.00", "bps": 125},
    {"minimum_amount": "1000000.00", "maximum_amount": None, "bps": 115},
])

TIERED_PRORATION = price("tiered_with_proration", tiers=[
    {"tier_lower_bound": "0", "unit_amount": "1.00"},
    {"tier_lower_bound": "10", "unit_amount": "0.50"}])
BULK_PRORATION = price("bulk_with_proration", tiers=[
    {"unit_amount": "0.50"}, {"tier_lower_bound": "10", "unit_amount": "0.40"}])
PACKAGE_MINIMUM = price("tiered_package_with_minimum", package_size="10", tiers=[
    {"tier_lower_bound": "0", "per_unit": "5.00", "minimum_amount": "20.00"},
    {"tier_lower_bound": "100", "per_unit": "4.00", "minimum_amount": "60.00"}])
GROUPED_PACKAGE = price("grouped_tiered_package", grouping_key="region", package_size="10",
                        tiers=[{"tier_lower_bound": "0", "per_unit": "5.00"},
                               {"tier_lower_bound": "20", "per_unit": "3.00"}])
DISPLAY_NAMES = price("matrix_with_display_name", dimension="model", unit_amounts=[
    {"dimension_value": "large", "display_name": "Large model", "unit_amount": "0.03"},
    {"dimension_value": "small", "display_name": "Small model", "unit_amount": "0.002"}])
SCALABLE = price("scalable_matrix_with_unit_pricing", first_dimension="region",
                 unit_price="0.10", matrix_scaling_factors=[
                     {"first_dimension_value": "us", "scaling_factor": "1.5"},
                     {"first_dimension_value": "eu", "scaling_factor": "0.5"}])
SCALABLE_2D = price("scalable_matrix_with_unit_pricing", first_dimension="region",
                    second_dimension="tier", unit_price="0.10", matrix_scaling_factors=[
                        {"first_dimension_value": "us", "second_dimension_value": "premium",
                         "scaling_factor": "2"}])

MIN_MAX = price("grouped_with_min_max_thresholds", grouping_key="region", per_unit_rate="0.50",
                minimum_charge="5.00", maximum_charge="20.00")
MAX_GROUP = price("max_group_tiered_package", grouping_key="region", package_size="10",
                  tiers=[{"tier_lower_bound": "0", "unit_amount": "1.00"},
                         {"tier_lower_bound": "20", "unit_amount": "0.50"}])
CUMULATIVE = price("cumulative_grouped_allocation", grouping_key="region",
                   cumulative_allocation="100", group_allocation="60", unit_amount="0.10")
FILTERED = price("bulk_with_filters", filters=[{"property_key": "region", "property_value": "us"}],
                 tiers=[{"unit_amount": "0.50"}, {"tier_lower_bound": "10", "unit_amount": "0.40"}])
FILTERED_2 = price("bulk_with_filters", filters=[
    {"property_key": "region", "property_value": "us"},
    {"property_key": "tier", "property_value": "premium"}],
    tiers=[{"tier_lower_bound": "0", "unit_amount": "0.50"},
           {"tier_lower_bound": "10", "unit_amount": "0.40"}])

EVENT_OUTPUT = price("event_output", unit_rating_key="rate", default_unit_rate="0.10")
EVENT_OUTPUT_BY_ID = price("event_output", unit_rating_key="rate", grouping_key="event_id")

TIERED_MATRIX = price("grouped_tiered_matrix", dimension="region", default_unit_amount="2.00",
                      tiers=[{"dimension_value": "us", "tier_lower_bound": "0",
                              "unit_amount": "1.00"},
                             {"dimension_value": "eu", "tier_lower_bound": "0",
                              "unit_amount": "3.00"},
                             {"dimension_value": "us", "tier_lower_bound": "10",
                              "unit_amount": "0.50"}])
TIERED_ALLOCATION = price("tiered_matrix_with_allocation", dimensions=["region"],
                          default_unit_amount="1.00", allocation="5", tiers=[
                              {"dimension_values": ["eu"], "tier_lower_bound": "0",
                               "unit_amount": "3.00"},
                              {"dimension_values": ["eu"], "tier_lower_bound": "10",
                               "unit_amount": "2.00"}])
TIERED_ALLOCATION_2D = price("tiered_matrix_with_allocation", dimensions=["region", "tier"],
                             default_unit_amount="1.00", allocation="5", tiers=[
                                 {"dimension_values": ["us", "premium"], "tier_lower_bound": "0",
                                  "unit_amount": "2.00"}])

ALLOWANCE = price("metered_allowance", grouping_key="event_name",
                  consumption_grouping_value="download",
                  allowance_grouping_value="storage_snapshot", unit_amount="0.10",
                  consumption_display_name="bytes gotten",
                  allowance_display_name="Up to 3x free egress")

PRORATED_MINIMUM = price("grouped_with_prorated_minimum", grouping_key="region",
                         minimum="10.00", unit_rate="1.00")

CUMULATIVE_BULK = price("cumulative_grouped_bulk", group="region", dimension_values=[
    {"grouping_key": "us", "tier_lower_bound": "0", "unit_amount": "1.00"},
    {"grouping_key": "eu", "tier_lower_bound": "0", "unit_amount": "2.00"},
    {"grouping_key": "us", "tier_lower_bound": "100", "unit_amount": "0.80"},
    {"grouping_key": "eu", "tier_lower_bound": "100", "unit_amount": "1.50"}])


def events(**quantities):
    return [{"group": {"event_name": name}, "quantity": q} for name, q in quantities.items()]


def rates(*rows):
    return [{"group": {"rate": rate, "event_id": event}, "quantity": q} for rate, event, q in rows]


def models(**quantities):
    return [{"group": {"model": m}, "quantity": q} for m, q in quantities.items()]


def cells(*rows):
    return [{"group": {"region": region, "tier": tier}, "quantity": q} for region, tier, q in rows]


@pytest.mark.parametrize(
    ("priced", "usage", "expected"),
    [
        # us 25 -> 3 packages: 2 x 5.00 + 1 x 3.00; eu 20 -> 2 packages x 5.00
        (GROUPED_PACKAGE, groups(us=25, eu=20), "23.00"),
        (GROUPED_PACKAGE, groups(us=1), "5.00"),  # a part package is a whole one
        (GROUPED_PACKAGE, [], "0.00"),
        # us given twice is one group of 25 (row by row: 2 + 1 packages at 5.00 = 15.00)
        (GROUPED_PACKAGE, [{"group": {"region": "us"}, "quantity": 15},
                           {"group": {"region": "us"}, "quantity": 10}], "13.00"),
        # each value at its unit_amount: 100 x 0.03 + 1000 x 0.002
        (DISPLAY_NAMES, models(large=100, small=1000), "5.00"),
        (DISPLAY_NAMES, models(other=50), "0.00"),  # a value with no unit amount
        (DISPLAY_NAMES, [], "0.00"),
        # q x factor x unit_price: 100 x 0.15 + 100 x 0.05 + 10 x 0.10 (apac: factor 1)
        (SCALABLE, groups(us=100, eu=100, apac=10), "21.00"),
        (SCALABLE, groups(eu=1), "0.05"),
        (SCALABLE, [], "0.00"),
        # (us, premium) 10 x 0.20; (us, basic) has no factor: 10 x 0.10
        (SCALABLE_2D, cells(("us", "premium", 10), ("us", "basic", 10)), "3.00"),
        # each group's q x 0.50 between 5.00 and 20.00: us 2.00 -> 5.00, eu 15.00, apac
        # 50.00 -> 20.00
        (MIN_MAX, groups(us=4, eu=30, apac=100), "40.00"),
        (MIN_MAX, groups(us=10, eu=40), "25.00"),  # exactly the minimum and the maximum
        (MIN_MAX, groups(us=0), "0.00"),  # a group of no usage pays no minimum
        (MIN_MAX, [], "0.00"),
        # only the largest group, eu 35 -> 4 packages = 40 units: 20 x 1.00 + 20 x 0.50
        (MAX_GROUP, groups(us=15, eu=35, apac=5), "30.00"),
        (MAX_GROUP, groups(us=15), "20.00"),  # 2 packages = 20 units, all in the first tier
        (MAX_GROUP, groups(us=12, eu=12), "20.00"),  # a tie is one group, not both
        (MAX_GROUP, [], "0.00"),
        # 60 free per group, 100 free in all, drawn in order of the values: apac draws 50,
        # eu the 50 left (30 charged), us none (70 charged): 100 x 0.10
        (CUMULATIVE, groups(apac=50, eu=80, us=70), "10.00"),
        (CUMULATIVE, groups(eu=80), "2.00"),  # 60 free: 20 x 0.10
        (CUMULATIVE, groups(eu=40, us=40), "0.00"),  # 80 free in all
        (CUMULATIVE, [], "0.00"),
        # bulk over the usage matching every filter only
        (FILTERED, groups(us=101, eu=500), "40.40"),  # 101 x 0.40
        (FILTERED, groups(us=10), "5.00"),  # 10 x 0.50: 10 is in the first tier
        (FILTERED, groups(eu=500), "0.00"),
        (FILTERED_2, cells(("us", "premium", 20), ("us", "basic", 5), ("eu", "premium", 9)),
         "8.00"),  # 20 x 0.40
        # each event's own rate: 4 x 0.25 + 2 x 1.10; no rate, not a number or negative:
        # the default 0.10 (5 + 1 + 1 units)
        (EVENT_OUTPUT, rates(("0.25", None, 4), ("1.10", None, 2)), "3.20"),
        (EVENT_OUTPUT, rates((None, None, 5), ("abc", None, 1), ("-1", None, 1)), "0.70"),
        (EVENT_OUTPUT, [], "0.00"),
        # grouped by event id too; no default, so usage without a rate is not charged:
        # 2 x 0.5 + 3 x 0.5
        (EVENT_OUTPUT_BY_ID, rates(("0.5", "a", 2), ("0.5", "b", 3), (None, "c", 9)), "2.50"),
        # each value on its own tiers, any other at the default: us 10 x 1.00 + 5 x 0.50,
        # eu 2 x 3.00, apac 3 x 2.00
        (TIERED_MATRIX, groups(us=15, eu=2, apac=3), "24.50"),
        (TIERED_MATRIX, groups(us=10), "10.00"),
        (TIERED_MATRIX, groups(apac=1), "2.00"),
        (TIERED_MATRIX, [], "0.00"),
        # 5 free, pooled: the eu cell draws first (4, all free), us the last 1: 9 x 1.00
        (TIERED_ALLOCATION, groups(us=10, eu=4), "9.00"),
        # eu draws all 5: 15 left, 10 x 3.00 + 5 x 2.00; us 10 x 1.00
        (TIERED_ALLOCATION, groups(us=10, eu=20), "50.00"),
        (TIERED_ALLOCATION, [], "0.00"),
        # (us, premium) draws 3, (us, basic) the other 2: 2 x 1.00
        (TIERED_ALLOCATION_2D, cells(("us", "premium", 3), ("us", "basic", 4)), "2.00"),
        # consumption less the allowance, at the unit amount: (100 - 30) x 0.10
        (ALLOWANCE, events(download=100, storage_snapshot=30), "7.00"),
        # the credit is capped at the consumption: 20 x 0.10 - 20 x 0.10
        (ALLOWANCE, events(download=20, storage_snapshot=50), "0.00"),
        (ALLOWANCE, events(storage_snapshot=40), "0.00"),
        (ALLOWANCE, events(download=10, upload=99), "1.00"),  # another value is not billed
        (ALLOWANCE, [], "0.00"),
        # each region at least 10.00 (a whole month: not prorated): us 4 -> 10.00, eu 25
        (PRORATED_MINIMUM, groups(us=4, eu=25), "35.00"),
        (PRORATED_MINIMUM, groups(us=10), "10.00"),
        (PRORATED_MINIMUM, groups(us=0), "0.00"),  # a group of no usage pays no minimum
        (PRORATED_MINIMUM, [], "0.00"),
        # the tier of the total over all regions, each region at its own rate in it:
        # 90 in all -> the first tier: 60 x 1.00 + 30 x 2.00
        (CUMULATIVE_BULK, groups(us=60, eu=30), "120.00"),
        # 110 in all -> the second tier for both: 60 x 0.80 + 50 x 1.50
        (CUMULATIVE_BULK, groups(us=60, eu=50), "123.00"),
        (CUMULATIVE_BULK, groups(us=50, eu=50), "150.00"),  # 100 is still the first tier
        # apac has no rates but counts toward the total: 105 -> us 95 x 0.80
        (CUMULATIVE_BULK, groups(us=95, apac=10), "76.00"),
        (CUMULATIVE_BULK, [], "0.00"),
    ],
)
def test_grouped_and_matrix_models(priced, usage, expected):
    assert evaluate_price(priced, usage) == Decimal(expected)


@pytest.mark.parametrize(
    ("priced", "usage", "expected"),
    [
        # Orb's docs: "$0.50 per API call"
        (price("unit", unit_amount="0.50"), 3, "1.50"),
        # Orb's docs: package size 10, "11 units will be billed at 20" -> 2 packages
        (PACKAGE, 0, "0.00"),
        (PACKAGE, 4, "1.00"),
        (PACKAGE, 10, "1.00"),
        (PACKAGE, 11, "2.00"),
        (PACKAGE, "10.5", "2.00"),
        # Orb's invoice calculation example: 150,000 calls -> $10 + $72 + $25
        (ORB_TIERED, 150000, "107.00"),
        # Orb's docs: "101 units total would be $40.40"; 10 units stay in the first tier;
        # past the last maximum the last tier's rate applies
        (ORB_BULK, 101, "40.40"),
        (ORB_BULK, 10, "5.00"),
        (ORB_BULK, 5, "2.50"),
        (ORB_BULK, 2000, "800.00"),
        # a total is charged once usage passes (exceeds) a threshold
        (THRESHOLDS, 0, "0.00"),
        (THRESHOLDS, 100, "0.00"),
        (THRESHOLDS, 101, "50.00"),
        (THRESHOLDS, 1000, "50.00"),
        (THRESHOLDS, "1000.5", "300.00"),
        # 95 units -> 10 packages, all in the first tier: 10 x 5.00
        (TIERED_PACKAGE, 95, "50.00"),
        # 101 units -> 11 packages: 10 x 5.00 + 1 x 4.00
        (TIERED_PACKAGE, 101, "54.00"),
        (TIERED_PACKAGE, 0, "0.00"),
        # graduated, but at least the minimum of the tier the usage reached
        (WITH_MINIMUM, 0, "0.00"),
        (WITH_MINIMUM, 5, "10.00"),  # 5.00 < minimum 10.00
        (WITH_MINIMUM, 60, "60.00"),  # 50 x 1.00 + 10 x 0.50 = 55.00 < minimum 60.00
        (WITH_MINIMUM, 200, "125.00"),  # 50 + 150 x 0.50
        # 100 units free, then packages of 10 at 2.00
        (WITH_ALLOCATION, 100, "0.00"),
        (WITH_ALLOCATION, 101, "2.00"),
        (WITH_ALLOCATION, 125, "6.00"),  # 25 over -> 3 packages
        # 25% of 10 x 2.00; 15% of 3 x 0.10 = 0.045 -> 0.05 (half up)
        (price("unit_with_percent", unit_amount="2.00", percent="25"), 10, "5.00"),
        (price("unit_with_percent", unit_amount="0.10", percent="15"), 3, "0.05"),
        # 125 bps = 1.25% of the volume
        (price("bps", bps=125), "1000.00", "12.50"),
        (price("bps", bps=125), "37.40", "0.47"),  # 0.4675
        # all volume at the rate of the tier the total falls in
        (BULK_BPS, "1000000", "12500.00"),
        (BULK_BPS, "1500000", "17250.00"),
        # graduated: 1.25% of the first million, 1.15% of the rest
        (TIERED_BPS, "1500000", "18250.00"),
        # no proration over a whole month
        (price("unit_with_proration", unit_amount="3.00"), 10, "30.00"),
        # graduated (the bounds' inclusiveness cannot change a graduated amount)
        (TIERED_PRORATION, 0, "0.00"),
        (TIERED_PRORATION, 10, "10.00"),  # 10 x 1.00
        (TIERED_PRORATION, 15, "12.50"),  # 10 x 1.00 + 5 x 0.50
        # volume over exclusive lower bounds; Orb's bulk example again: 101 -> $40.40
        (BULK_PRORATION, 0, "0.00"),
        (BULK_PRORATION, 10, "5.00"),  # 10 is still in the first tier: 10 x 0.50
        (BULK_PRORATION, "10.5", "4.20"),  # 10.5 x 0.40
        (BULK_PRORATION, 101, "40.40"),
        # packages of 10, graduated over packages, at least the reached tier's minimum
        (PACKAGE_MINIMUM, 0, "0.00"),
        (PACKAGE_MINIMUM, 5, "20.00"),  # 1 package x 5.00 < minimum 20.00
        (PACKAGE_MINIMUM, 100, "50.00"),  # 10 packages x 5.00, still the first tier
        (PACKAGE_MINIMUM, 101, "60.00"),  # 11 packages: 50 + 4.00 = 54.00 < minimum 60.00
        (PACKAGE_MINIMUM, 151, "74.00"),  # 16 packages: 50 + 6 x 4.00
    ],
)
def test_price_models(priced, usage, expected):
    assert evaluate_price(priced, usage) == Decimal(expected)


def test_matrix_from_orbs_docs():
    matrix = price("matrix", dimensions=["cluster_name", "region"], default_unit_amount="3.00",
                   matrix_values=[{"dimension_values": ["alpha", "west"], "unit_amount": "2.00"}])
    usage = [{"group": {"cluster_name": "alpha", "region": "west"}, "quantity": 2},
             {"group": {"cluster_name": "alpha", "region": "east"}, "quantity": 1}]
    assert evaluate_price(matrix, usage) == Decimal("7.00")  # 2 x 2.00 + 1 x 3.00 default


def test_one_dimensional_matrix_uses_orbs_null_second_value():
    matrix = price("matrix", dimensions=["region", None], default_unit_amount="2.00",
                   matrix_values=[{"dimension_values": ["us", None], "unit_amount": "1.00"}])
    assert evaluate_price(matrix, groups(us=5, eu=3)) == Decimal("11.00")  # 5 x 1 + 3 x 2


def test_grouped_tiered_tiers_each_group():
    grouped = price("grouped_tiered", grouping_key="region", tiers=[
        {"tier_lower_bound": "0", "unit_amount": "1.00"},
        {"tier_lower_bound": "10", "unit_amount": "0.50"}])
    # us: 10 x 1.00 + 5 x 0.50 = 12.50; eu: 4 x 1.00 = 4.00
    breakdown = price_breakdown(grouped, groups(us=15, eu=4))
    assert breakdown.amount == Decimal("16.50")
    per_group = {}
    for sub in breakdown.sub_line_items:
        per_group[sub["group_values"][0]] = per_group.get(sub["group_values"][0], 0) + sub["amount"]
    assert per_group == {"us": Decimal("12.50"), "eu": Decimal("4.00")}


def test_grouped_allocation_frees_units_per_group():
    grouped = price("grouped_allocation", grouping_key="region", allocation="100",
                    overage_unit_rate="0.02")
    # us: 50 over x 0.02 = 1.00; eu: 80 is within its allocation
    assert evaluate_price(grouped, groups(us=150, eu=80)) == Decimal("1.00")


def test_matrix_allocation_is_drawn_in_cell_order():
    matrix = price("matrix_with_allocation", dimensions=["region"], default_unit_amount="1.00",
                   allocation="5",
                   matrix_values=[{"dimension_values": ["eu"], "unit_amount": "3.00"}])
    # the eu cell comes first and takes 4 of the 5 free units; us (default) gets 1 free:
    # 0 x 3.00 + 9 x 1.00
    assert evaluate_price(matrix, groups(us=10, eu=4)) == Decimal("9.00")


def test_yen_and_dinar_round_to_their_own_minor_unit():
    unit = {**price("unit", unit_amount="0.25"), "currency": "JPY"}
    assert evaluate_price(unit, 10) == Decimal("3")  # 2.5 -> 3
    unit = {**price("unit", unit_amount="0.0005"), "currency": "KWD"}
    assert evaluate_price(unit, 3) == Decimal("0.002")  # 0.0015 -> 0.002


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (price("bps", bps=125, per_unit_maximum="11.00"), "event-level rating"),
        (price("unit", unit_amount=0.5), "quoted strings"),
        (price("tiered_package", package_size="10", tiers=[
            {"tier_lower_bound": "0", "per_unit": "1"},
            {"tier_lower_bound": "15", "per_unit": "1"}]), "not a multiple of package_size"),
        (price("bulk", tiers=[{"maximum_units": 10, "unit_amount": "1"},
                              {"maximum_units": 5, "unit_amount": "1"}]), "must increase"),
        (price("unit_with_percent", unit_amount="0.000000000001", percent="33"),
         "more than 12 decimal places"),
        ({"model_type": "unit"}, "no 'unit_config'"),
    ],
)
def test_bad_prices_are_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        evaluate_price(bad, 1)


def test_grouped_price_needs_grouped_usage():
    grouped = price("grouped_allocation", grouping_key="region", allocation="1",
                    overage_unit_rate="1")
    with pytest.raises(ValueError, match="groups usage by"):
        evaluate_price(grouped, 10)


def amount_by_group(breakdown):
    per_group = {}
    for sub in breakdown.sub_line_items:
        key = tuple(sub["group_values"])
        per_group[key] = per_group.get(key, 0) + sub["amount"]
    return per_group


def test_the_same_group_twice_is_tiered_as_one_group():
    grouped = price("grouped_tiered", grouping_key="region", tiers=[
        {"tier_lower_bound": "0", "unit_amount": "1.00"},
        {"tier_lower_bound": "10", "unit_amount": "0.50"}])
    usage = [{"group": {"region": "us"}, "quantity": 5},
             {"group": {"region": "us"}, "quantity": 10}]
    # one group of 15: 10 x 1.00 + 5 x 0.50 = 12.50 (row by row it would be 5 + 10 = 15.00)
    breakdown = price_breakdown(grouped, usage)
    assert breakdown.amount == Decimal("12.50")
    assert amount_by_group(breakdown) == {("us",): Decimal("12.50")}
    assert [(s["tier_index"], s["quantity"]) for s in breakdown.sub_line_items] == [
        (0, 10), (1, 5)]


def test_the_same_group_twice_draws_one_allocation():
    grouped = price("grouped_allocation", grouping_key="region", allocation="100",
                    overage_unit_rate="0.02")
    # us: 60 + 90 = 150, 50 over the 100 free x 0.02 = 1.00 (row by row both are free)
    usage = [{"group": {"region": "us"}, "quantity": 60},
             {"group": {"region": "us", "zone": "a"}, "quantity": 90}]
    assert evaluate_price(grouped, usage) == Decimal("1.00")


def run_price(tmp_path, priced, *args):
    (tmp_path / "price.json").write_text(json.dumps(priced))
    return CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["price", "--price", str(tmp_path / "price.json"), *args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("-5", "Error: quantity: -5 is negative; a usage quantity is 0 or more"),
        ("abc", "Error: quantity: 'abc' is not a number"),
        ("NaN", "Error: quantity: 'NaN' is not a finite number"),
        ("0.0000000001", "Error: quantity: 0.0000000001 has more than 9 decimal places"),
        ("1e29", "Error: quantity: 1e29 is too large (at most 29 digits before the decimal"),
    ],
)
def test_cli_refuses_a_bad_quantity_naming_it(tmp_path, quantity, message):
    result = run_price(tmp_path, ORB_BULK, "--quantity", quantity)
    assert result.exit_code == 1
    assert result.output.startswith(message)


def test_cli_accepts_nine_decimal_places(tmp_path):
    # 0.000000001 x 0.50 = 0.0000000005 -> $0.00; 10.000000000 (trailing zeros) is 10
    assert "Amount: $0.00" in run_price(tmp_path, ORB_BULK, "--quantity", "0.000000001").output
    assert "Amount: $5.00" in run_price(tmp_path, ORB_BULK, "--quantity", "10.0000000000").output


def test_cli_names_the_usage_row_of_a_negative_quantity(tmp_path):
    (tmp_path / "usage.json").write_text(json.dumps(
        [{"group": {"region": "us"}, "quantity": 3}, {"group": {"region": "eu"}, "quantity": -2}]))
    grouped = price("grouped_allocation", grouping_key="region", allocation="1",
                    overage_unit_rate="1")
    result = run_price(tmp_path, grouped, "--usage", str(tmp_path / "usage.json"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: usage[1].quantity: -2 is negative")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (price("unit", unit_amount="0.0000000000001"),
         "Error: invalid price: unit_config.unit_amount: Decimal input should have no more "
         "than 12 decimal places"),
        (price("tiered", tiers=[{"first_unit": 0, "last_unit": "0.0000000001",
                                 "unit_amount": "1"},
                                {"first_unit": "0.0000000001", "unit_amount": "1"}]),
         "Error: invalid price: tiered_config.tiers[0].last_unit: Decimal input should have no "
         "more than 9 decimal places"),
        (price("package", package_amount="1", package_size="1e30"),
         "Error: invalid price: package_config.package_size: Input should be less than 1E+29"),
        (price("flat_fee", amount="1"),
         "Error: unknown model_type 'flat_fee'; the price models are: bps, bulk, bulk_bps,"),
        ({"unit_config": {"unit_amount": "1"}}, "Error: unknown model_type None;"),
    ],
)
def test_cli_explains_a_bad_price(tmp_path, bad, message):
    result = run_price(tmp_path, bad, "--quantity", "1")
    assert result.exit_code == 1
    assert result.output.startswith(message)


def test_cli_names_a_price_file_that_is_not_json(tmp_path):
    (tmp_path / "price.json").write_text("{model_type: unit")
    result = CliRunner().invoke(main, ["price", "--price", str(tmp_path / "price.json"),
                                       "--quantity", "1"])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'price.json'}: not JSON: Expecting property name" in result.output


def test_evaluate_price_refuses_a_negative_quantity():
    with pytest.raises(ValueError, match=r"^quantity: -0.5 is negative"):
        evaluate_price(price("unit", unit_amount="1.00"), "-0.5")
    with pytest.raises(ValueError, match=r"^quantity: expected a number, got True"):
        evaluate_price(price("unit", unit_amount="1.00"), True)


def test_grouped_tiered_matrix_breaks_each_value_down_by_its_own_tiers():
    breakdown = price_breakdown(TIERED_MATRIX, groups(us=15, apac=3))
    assert [(s["group_values"], s["tier_index"], s["quantity"], s["unit_amount"], s["amount"])
            for s in breakdown.sub_line_items] == [
        (["apac"], 0, 3, Decimal("2.00"), Decimal("6.00")),
        (["us"], 0, 10, Decimal("1.00"), Decimal("10.00")),
        (["us"], 1, 5, Decimal("0.50"), Decimal("2.50"))]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (price("grouped_tiered_matrix", dimension="region", default_unit_amount="1",
               tiers=[{"dimension_value": "us", "tier_lower_bound": "5", "unit_amount": "1"}]),
         r"the tiers of \['us'\]: the first tier_lower_bound must be 0"),
        (price("tiered_matrix_with_allocation", dimensions=["region", "tier"],
               default_unit_amount="1", allocation="0",
               tiers=[{"dimension_values": ["us"], "tier_lower_bound": "0", "unit_amount": "1"}]),
         r"tiers\[0\]: dimension_values needs one value per dimension"),
        (price("grouped_with_min_max_thresholds", grouping_key="region", per_unit_rate="1",
               minimum_charge="5", maximum_charge="4"), "maximum_charge must be at least"),
        (price("bulk_with_filters", filters=[
            {"property_key": "region", "property_value": "us"},
            {"property_key": "region", "property_value": "eu"}],
               tiers=[{"unit_amount": "1"}]), "filters repeat a property_key"),
        (price("bulk_with_proration", tiers=[{"unit_amount": "1"}, {"unit_amount": "2"}]),
         "only the first tier may have no tier_lower_bound"),
        (price("scalable_matrix_with_unit_pricing", first_dimension="region",
               second_dimension="tier", unit_price="1",
               matrix_scaling_factors=[{"first_dimension_value": "us", "scaling_factor": "2"}]),
         "give a second_dimension_value exactly when"),
        (price("event_output", unit_rating_key="rate", grouping_key="rate"),
         "grouping_key must differ from unit_rating_key"),
        (price("cumulative_grouped_bulk", group="region", dimension_values=[
            {"grouping_key": "us", "tier_lower_bound": "0", "unit_amount": "1"},
            {"grouping_key": "eu", "tier_lower_bound": "0", "unit_amount": "1"},
            {"grouping_key": "us", "tier_lower_bound": "100", "unit_amount": "1"}]),
         "every grouping_key value needs the same tier_lower_bound values"),
        (price("max_group_tiered_package", grouping_key="region", package_size="10", tiers=[
            {"tier_lower_bound": "0", "unit_amount": "1"},
            {"tier_lower_bound": "15", "unit_amount": "1"}]), "not a multiple of package_size"),
    ],
)
def test_bad_new_model_configs_are_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        evaluate_price(bad, [])


def test_a_composite_price_alone_is_its_minimum():
    # evaluate_price has no other prices for it to be charged on
    assert evaluate_price(price("percent", percent="0.1", minimum_amount="5.00"), 0) == Decimal(
        "5.00")
    assert evaluate_price(price("percent", percent="0.1"), 0) == Decimal("0.00")
    assert evaluate_price(price("minimum_composite", minimum_amount="60.00"), 0) == Decimal(
        "60.00")


def test_metered_allowance_shows_the_consumption_and_the_credit():
    breakdown = price_breakdown(ALLOWANCE, events(download=20, storage_snapshot=50))
    assert [(s["group_values"], s["quantity"], s["unit_amount"], s["amount"])
            for s in breakdown.sub_line_items] == [
        (["download"], 20, Decimal("0.10"), Decimal("2.00")),
        (["storage_snapshot"], 20, Decimal("-0.10"), Decimal("-2.00"))]
    assert (breakdown.amount, breakdown.precise_amount) == (Decimal("0.00"), 0)


# ---- the four models Orb added last: matrix_with_threshold_discounts,
# daily_credit_allowance, grouped_with_metered_minimum, scalable_matrix_with_tiered_pricing.
# Orb publishes no worked example for them; the vectors follow the SDK's field
# descriptions (orb-billing 4.90.0, types/shared/price.py).

THRESHOLD_DISCOUNTS = price(
    "matrix_with_threshold_discounts", first_dimension="color", second_dimension="shape",
    default_unit_amount="0.50", matrix_values=[
        {"first_dimension_value": "blue", "second_dimension_value": "circle",
         "unit_amount": "1.00"},
        {"first_dimension_value": "green", "second_dimension_value": "triangle",
         "unit_amount": "2.00"}],
    threshold_discount_groups=[{
        "cell_coordinates": "blue,circle;green,triangle;red,circle", "threshold_amount": "100",
        "below_threshold_discount_percentage": "0.1",
        "above_threshold_discount_percentage": "0.2", "description": "volume"}])
DAILY = price("daily_credit_allowance", dimensions=["model"], event_day_property="day",
              default_unit_amount="0.01", daily_allowance="5",
              matrix_values=[{"dimension_values": ["large"], "unit_amount": "0.03"}])
METERED = price("grouped_with_metered_minimum", grouping_key="cluster", pricing_key="gpu",
                scaling_key="region", minimum_unit_amount="3.00",
                unit_amounts=[{"pricing_value": "a100", "unit_amount": "2.00"},
                              {"pricing_value": "h100", "unit_amount": "4.00"}],
                scaling_factors=[{"scaling_value": "eu", "scaling_factor": "1.5"}])
SCALABLE_TIERED = price("scalable_matrix_with_tiered_pricing", first_dimension="region",
                        matrix_scaling_factors=[
                            {"first_dimension_value": "us", "scaling_factor": "1.5"},
                            {"first_dimension_value": "eu", "scaling_factor": "0.5"}],
                        tiers=[{"tier_lower_bound": "0", "unit_amount": "1.00"},
                               {"tier_lower_bound": "10", "unit_amount": "0.50"}])


def shapes(*rows):
    return [{"group": {"color": c, "shape": s}, "quantity": q} for c, s, q in rows]


def days(*rows):
    return [{"group": {"day": d, "model": m} if d else {"model": m}, "quantity": q}
            for d, m, q in rows]


def gpus(*rows):
    return [{"group": {"cluster": c, "gpu": g, "region": r}, "quantity": q}
            for c, g, r, q in rows]


@pytest.mark.parametrize(
    ("priced", "usage", "expected"),
    [
        # the group's spend S = 30 x 1.00 + 20 x 2.00 = 70 <= 100: 10% off, 70 - 7.00
        (THRESHOLD_DISCOUNTS, shapes(("blue", "circle", 30), ("green", "triangle", 20)),
         "63.00"),
        # S = 20 + 40 x 2.00 = 100, at the threshold: still 10% off, 100 - 10.00
        (THRESHOLD_DISCOUNTS, shapes(("blue", "circle", 20), ("green", "triangle", 40)),
         "90.00"),
        # S = 40 + 100 = 140: 10% of 100 + 20% of 40 = 18.00 off; red/square is in no
        # group, at the default 10 x 0.50: 140 - 18 + 5
        (THRESHOLD_DISCOUNTS, shapes(("blue", "circle", 40), ("green", "triangle", 50),
                                     ("red", "square", 10)), "127.00"),
        # red/circle is in the group at the default rate: 100 x 0.50 = 50, 10% off
        (THRESHOLD_DISCOUNTS, shapes(("red", "circle", 100)), "45.00"),
        (THRESHOLD_DISCOUNTS, [], "0.00"),
        # day 1: 100 x 0.03 + 200 x 0.01 (default) = 5.00, all of the allowance: free
        (DAILY, days(("2026-01-01", "large", 100), ("2026-01-01", "small", 200)), "0.00"),
        # day 2: 300 x 0.03 = 9.00, 5.00 of it free
        (DAILY, days(("2026-01-02", "large", 300)), "4.00"),
        # what day 1 leaves unused (4.00) does not roll over to day 2: 0 + 4.00
        (DAILY, days(("2026-01-01", "small", 100), ("2026-01-02", "large", 300)), "4.00"),
        # usage of no day has no allowance: 0 + 4.00 + 0 (1.00 on day 3) + 10 x 0.03
        (DAILY, days(("2026-01-01", "large", 100), ("2026-01-01", "small", 200),
                     ("2026-01-02", "large", 300), ("2026-01-03", "small", 100),
                     (None, "large", 10)), "4.30"),
        (DAILY, [], "0.00"),
        # c1: 10 x 2.00 + 5 x (4.00 x 1.5) = 50.00 >= 3.00 x 15 units: 50.00
        (METERED, gpus(("c1", "a100", "us", 10), ("c1", "h100", "eu", 5)), "50.00"),
        # c2: 10 x 2.00 = 20.00 < 3.00 x 10: 30.00
        (METERED, gpus(("c2", "a100", "us", 10)), "30.00"),
        # t4 has no unit amount: the minimum unit amount, scaled: 2 x 3.00 x 1.5 = 9.00
        (METERED, gpus(("c3", "t4", "eu", 2)), "9.00"),
        (METERED, gpus(("c3", "t4", "us", 2)), "6.00"),  # 2 x 3.00, the minimum exactly
        # each cluster its own minimum: 50.00 + 30.00 + 9.00
        (METERED, gpus(("c1", "a100", "us", 10), ("c1", "h100", "eu", 5),
                       ("c2", "a100", "us", 10), ("c3", "t4", "eu", 2)), "89.00"),
        (METERED, [], "0.00"),
        # each region graduated on the tiers, its rates times its factor:
        # us 10 x 1.50 + 5 x 0.75, eu 10 x 0.50 + 10 x 0.25, apac (no factor) 10 x 1.00 + 2 x 0.50
        (SCALABLE_TIERED, groups(us=15, eu=20, apac=12), "37.25"),
        (SCALABLE_TIERED, groups(us=10), "15.00"),  # the 10th unit is in the first tier
        (SCALABLE_TIERED, groups(eu="0.5"), "0.25"),
        (SCALABLE_TIERED, [], "0.00"),
    ],
)
def test_orbs_newest_models(priced, usage, expected):
    assert evaluate_price(priced, usage) == Decimal(expected)


def breakdown_rows(priced, usage):
    breakdown = price_breakdown(priced, usage)
    rows = [(s["group_values"], s["quantity"], s["unit_amount"], s["amount"])
            for s in breakdown.sub_line_items]
    assert sum(s["amount"] for s in breakdown.sub_line_items) == breakdown.precise_amount
    return rows, breakdown.amount


def test_threshold_discount_shows_each_cells_credit_and_the_threshold():
    rows, amount = breakdown_rows(THRESHOLD_DISCOUNTS, shapes(
        ("blue", "circle", 40), ("green", "triangle", 50)))
    # S = 140 > 100: each cell credited at its rate x 20% (above), and the threshold's
    # 100 at 10% - 20% = -10% (its row credits -10.00, i.e. charges back 10.00):
    # 40 - 8 + 100 - 20 + 10 = 122 = 140 - (0.1 x 100 + 0.2 x 40)
    assert rows == [
        (["blue", "circle"], 40, Decimal("1.00"), Decimal("40.00")),
        (["blue", "circle"], 40, Decimal("-0.20"), Decimal("-8.00")),
        (["green", "triangle"], 50, Decimal("2.00"), Decimal("100.00")),
        (["green", "triangle"], 50, Decimal("-0.40"), Decimal("-20.00")),
        (["volume"], 100, Decimal("0.10"), Decimal("10.00"))]
    assert amount == Decimal("122.00")


def test_daily_allowance_shows_each_days_credit():
    rows, amount = breakdown_rows(DAILY, days(
        ("2026-01-01", "large", 100), ("2026-01-01", "small", 200),
        ("2026-01-02", "large", 300)))
    # day 1 within the allowance: each group credited at its own rate; day 2 past it:
    # the allowance, 5 x -1
    assert rows == [
        (["2026-01-01", "large"], 100, Decimal("0.03"), Decimal("3.00")),
        (["2026-01-01", "large"], 100, Decimal("-0.03"), Decimal("-3.00")),
        (["2026-01-01", "small"], 200, Decimal("0.01"), Decimal("2.00")),
        (["2026-01-01", "small"], 200, Decimal("-0.01"), Decimal("-2.00")),
        (["2026-01-02"], 5, Decimal("-1"), Decimal("-5.00")),
        (["2026-01-02", "large"], 300, Decimal("0.03"), Decimal("9.00"))]
    assert amount == Decimal("4.00")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (price("matrix_with_threshold_discounts", first_dimension="color",
               default_unit_amount="1", matrix_values=[], threshold_discount_groups=[
                   {"cell_coordinates": "blue,circle", "threshold_amount": "1",
                    "below_threshold_discount_percentage": "0",
                    "above_threshold_discount_percentage": "0.5"}]),
         r"threshold_discount_groups\[0\].cell_coordinates: 'blue,circle' needs 1 value"),
        (price("matrix_with_threshold_discounts", first_dimension="color",
               default_unit_amount="1", matrix_values=[], threshold_discount_groups=[
                   {"cell_coordinates": "blue;red;blue", "threshold_amount": "1",
                    "below_threshold_discount_percentage": "0",
                    "above_threshold_discount_percentage": "0.5"}]),
         "the cell 'blue' is in two discount groups"),
        (price("matrix_with_threshold_discounts", first_dimension="color",
               default_unit_amount="1", matrix_values=[], threshold_discount_groups=[
                   {"cell_coordinates": "blue", "threshold_amount": "1",
                    "below_threshold_discount_percentage": "0",
                    "above_threshold_discount_percentage": "20"}]),
         r"threshold_discount_groups\[0\].above_threshold_discount_percentage: Value error, "
         r"20 is not a fraction from 0 to 1"),
        (price("daily_credit_allowance", dimensions=["day"], event_day_property="day",
               default_unit_amount="1", daily_allowance="1", matrix_values=[]),
         "event_day_property must differ from the dimensions"),
        (price("grouped_with_metered_minimum", grouping_key="gpu", pricing_key="gpu",
               scaling_key="region", minimum_unit_amount="1", unit_amounts=[],
               scaling_factors=[]), "grouping_key, pricing_key and scaling_key must differ"),
        (price("grouped_with_metered_minimum", grouping_key="cluster", pricing_key="gpu",
               scaling_key="region", minimum_unit_amount="0.000000000001", unit_amounts=[],
               scaling_factors=[{"scaling_value": "eu", "scaling_factor": "0.5"}]),
         r"scaling_factors\[0\]: a unit amount x scaling_factor 5E-13 needs more than 12"),
        (price("scalable_matrix_with_tiered_pricing", first_dimension="region",
               matrix_scaling_factors=[],
               tiers=[{"tier_lower_bound": "5", "unit_amount": "1"}]),
         "the first tier_lower_bound must be 0"),
    ],
)
def test_bad_newest_model_configs_are_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        evaluate_price(bad, [])


def test_the_loader_names_the_field_of_a_bad_newest_model():
    plans = """plans:
- id: p
  name: P
  currency: USD
  prices:
  - id: x
    name: X
    model_type: matrix_with_threshold_discounts
    billable_metric_id: m
    matrix_with_threshold_discounts_config:
      first_dimension: color
      default_unit_amount: '1'
      matrix_values: []
      threshold_discount_groups:
      - cell_coordinates: blue
        threshold_amount: '100'
        below_threshold_discount_percentage: '0'
        above_threshold_discount_percentage: '15'
"""
    with pytest.raises(CatalogError) as error:
        parse_catalog([("plans.yaml", plans)])
    assert ("plans.yaml:18: plans[0].prices[0].matrix_with_threshold_discounts_config"
            ".threshold_discount_groups[0].above_threshold_discount_percentage: Value error, "
            "15 is not a fraction from 0 to 1") in str(error.value)


def test_newest_models_through_the_pipeline(tmp_path):
    """Events with their properties, ingested and rated as a billing run rates them."""
    def usage_price(price_id, priced):
        return {**priced, "id": price_id, "name": price_id, "billable_metric_id": "units"}

    shop = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": [
            usage_price("discounts", THRESHOLD_DISCOUNTS), usage_price("daily", DAILY),
            usage_price("metered", METERED), usage_price("scalable", SCALABLE_TIERED)]}],
        customers=[{"id": "c0", "name": "C0"}],
        subscriptions=[{"id": "s0", "customer_id": "c0", "plan_id": "p",
                        "start_date": "2026-01-01"}],
        metrics={"units": "SELECT sum(properties.units) FROM events"})
    rows = [  # (properties, units), one event each, in October
        ({"color": "blue", "shape": "circle", "day": "2026-10-01", "model": "large",
          "cluster": "c1", "gpu": "a100", "region": "us"}, 25),
        ({"color": "blue", "shape": "circle", "day": "2026-10-01", "model": "large",
          "cluster": "c1", "gpu": "a100", "region": "us"}, 15),
        ({"color": "green", "shape": "triangle", "day": "2026-10-02", "model": "small",
          "cluster": "c2", "gpu": "h100", "region": "eu"}, 50),
    ]
    events = [{"event_name": "use", "timestamp": f"2026-10-0{i + 1}T12:00:00Z",
               "customer_id": "c0", "idempotency_key": f"e{i}",
               "properties": {**props, "units": units}}
              for i, (props, units) in enumerate(rows)]
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, shop, [batch(tmp_path / "october.jsonl", *events)],
                 datetime(2026, 11, 10, tzinfo=UTC))
    usage = compute_usage(connect(), lake, shop, date(2026, 10, 1)).usage
    lines = {line["price_id"]: line["amount"]
             for line in price_line_items(connect(), shop, date(2026, 10, 1),
                                          usage).line_items.to_pylist()}
    assert lines == {
        # blue/circle 40 x 1.00 + green/triangle 50 x 2.00 = 140: less 10% of 100 + 20% of 40
        "discounts": Decimal("122.00"),
        # Oct 1: 40 large x 0.03 = 1.20, free; Oct 2: 50 small x 0.01 = 0.50, free
        "daily": Decimal("0.00"),
        # c1: 40 x 2.00 = 80.00 < 3.00 x 40 units: 120.00; c2: 50 x 4.00 x 1.5 = 300.00
        # >= 3.00 x 50: 300.00
        "metered": Decimal("420.00"),
        # us: 10 x 1.50 + 30 x 0.75 = 37.50; eu: 10 x 0.50 + 40 x 0.25 = 15.00
        "scalable": Decimal("52.50"),
    }


def test_scaling_factor_multiplies_the_rated_quantity():
    # Orb's unit_config.scaling_factor, "applied to rated quantity before unit_amount":
    # 3 x 2 x 0.50; Orb sends null for none
    assert evaluate_price(price("unit", unit_amount="0.50", scaling_factor="2"), 3) == Decimal(
        "3.00")
    assert evaluate_price(price("unit", unit_amount="0.50", scaling_factor=None), 3) == Decimal(
        "1.50")
    # a matrix cell's own factor, and the config's for the default bucket:
    # 2 x 2 x 2.00 + 1 x 0.5 x 3.00
    matrix = price("matrix", dimensions=["cluster_name", "region"], default_unit_amount="3.00",
                   scaling_factor="0.5", matrix_values=[
                       {"dimension_values": ["alpha", "west"], "unit_amount": "2.00",
                        "scaling_factor": "2"}])
    usage = [{"group": {"cluster_name": "alpha", "region": "west"}, "quantity": 2},
             {"group": {"cluster_name": "alpha", "region": "east"}, "quantity": 1}]
    assert evaluate_price(matrix, usage) == Decimal("9.50")
    with pytest.raises(ValueError, match=r"unit_amount x scaling_factor 5E-13 needs more than"):
        evaluate_price(price("unit", unit_amount="0.000000000001", scaling_factor="0.5"), 1)


NEWEST_GROUPS = {  # each newest model, and the groups its property test fills
    "discounts": (THRESHOLD_DISCOUNTS, [{"color": "blue", "shape": "circle"},
                                        {"color": "green", "shape": "triangle"},
                                        {"color": "red", "shape": "square"}]),
    "daily": (DAILY, [{"day": "2026-01-01", "model": "large"},
                      {"day": "2026-01-01", "model": "small"},
                      {"day": "2026-01-02", "model": "large"}]),
    "metered": (METERED, [{"cluster": "c1", "gpu": "a100", "region": "us"},
                          {"cluster": "c1", "gpu": "t4", "region": "eu"},
                          {"cluster": "c2", "gpu": "h100", "region": "eu"}]),
    "scalable": (SCALABLE_TIERED, [{"region": "us"}, {"region": "eu"}, {"region": "apac"}]),
}


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(sorted(NEWEST_GROUPS)),
       base=st.lists(st.decimals(min_value=0, max_value=10**4, places=3), min_size=3,
                     max_size=3),
       more=st.decimals(min_value=0, max_value=10**4, places=3),
       grown=st.integers(min_value=0, max_value=2))
def test_newest_models_add_up_and_are_monotone(name, base, more, grown):
    priced, groups_ = NEWEST_GROUPS[name]
    usage = [{"group": g, "quantity": q} for g, q in zip(groups_, base, strict=True)]
    breakdown = price_breakdown(priced, usage)
    rows = sum(s["amount"] for s in breakdown.sub_line_items)
    if name == "metered":  # the minimum raises the line past its rows, never lowers it
        assert breakdown.precise_amount >= rows
    else:  # the spend discounts' credits are rows of the breakdown
        assert breakdown.precise_amount == rows
    # a discount takes at most a fraction (<= 1) of each unit's rate, an allowance at most
    # the day's spend: more usage in one group never costs less
    usage[grown] = {**usage[grown], "quantity": base[grown] + more}
    assert evaluate_price(priced, usage) >= breakdown.amount
