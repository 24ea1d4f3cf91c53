"""Every price model against amounts worked out by hand or published in Orb's docs.

The amounts run through ``evaluate_price``, i.e. the pipeline's own line_items.sql.
"""

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from billing.catalog.loader import CatalogError, parse_catalog
from cli.main import main
from pricing_sql.evaluate import evaluate_price, price_breakdown


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


@pytest.mark.parametrize("model_type", ["daily_credit_allowance",
                                        "scalable_matrix_with_tiered_pricing"])
def test_orbs_unsupported_models_are_refused_by_name(model_type):
    message = f"model_type '{model_type}' is one of Orb's price models but is not supported yet"
    with pytest.raises(ValueError, match=message):
        evaluate_price(price(model_type), 1)
    plans = ("plans:\n- id: p\n  name: P\n  currency: USD\n  prices:\n  - id: x\n"
             f"    name: X\n    model_type: {model_type}\n    billable_metric_id: m\n")
    with pytest.raises(CatalogError) as error:
        parse_catalog([("plans.yaml", plans)])
    assert f"plans.yaml:6: plans[0].prices[0]: Value error, {message}" in str(error.value)


def test_metered_allowance_shows_the_consumption_and_the_credit():
    breakdown = price_breakdown(ALLOWANCE, events(download=20, storage_snapshot=50))
    assert [(s["group_values"], s["quantity"], s["unit_amount"], s["amount"])
            for s in breakdown.sub_line_items] == [
        (["download"], 20, Decimal("0.10"), Decimal("2.00")),
        (["storage_snapshot"], 20, Decimal("-0.10"), Decimal("-2.00"))]
    assert (breakdown.amount, breakdown.precise_amount) == (Decimal("0.00"), 0)
