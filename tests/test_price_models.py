"""Every price model against amounts worked out by hand or published in Orb's docs.

The amounts run through ``evaluate_price``, i.e. the pipeline's own line_items.sql.
"""

from decimal import Decimal

import pytest

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
