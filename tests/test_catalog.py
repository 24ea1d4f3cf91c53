import textwrap
from decimal import Decimal

import pytest

from billing.catalog import CatalogError
from pricing_sql.catalog_files import load_catalog

METRICS = """\
metrics:
  - id: calls
    name: Calls
    sql: SELECT count(*) FROM events
"""

PLAN = """\
plans:
  - id: pro
    name: Pro
    currency: USD
    prices:
      - id: pro_calls
        name: Calls
        billable_metric_id: calls
        model_type: tiered
        tiered_config:
          tiers:
            - {first_unit: 0, last_unit: 10, unit_amount: "0.50"}
            - {first_unit: 10, last_unit: null, unit_amount: "0.10"}
"""

CUSTOMERS = """\
customers:
  - id: c1
    name: One
    timezone: Europe/Berlin
subscriptions:
  - id: s1
    customer_id: c1
    plan_id: pro
    start_date: 2026-01-01
"""


def write(folder, **files):
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    return folder


def problems(folder):
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    return caught.value.problems


def test_valid_catalog_loads(tmp_path):
    catalog = load_catalog(write(tmp_path, metrics=METRICS, plans=PLAN, customers=CUSTOMERS))
    price = catalog.plan("pro").prices[0]
    assert [t.rate for t in price.program().tiers] == [Decimal("0.50"), Decimal("0.10")]
    assert catalog.customer("c1").timezone == "Europe/Berlin"


def test_float_amount_names_file_line_and_field(tmp_path):
    plan = PLAN.replace('unit_amount: "0.10"', "unit_amount: 0.10")
    found = problems(write(tmp_path, metrics=METRICS, plans=plan, customers=CUSTOMERS))
    assert len(found) == 1
    assert found[0].startswith(
        "plans.yaml:13: plans[0].prices[0].tiered_config.tiers[1].unit_amount:")
    assert "quoted strings" in found[0]


def test_gap_between_tiers_is_refused(tmp_path):
    plan = PLAN.replace("{first_unit: 10, last_unit: null", "{first_unit: 12, last_unit: null")
    found = problems(write(tmp_path, metrics=METRICS, plans=plan, customers=CUSTOMERS))
    assert "tiers must be contiguous" in found[0]
    assert found[0].startswith("plans.yaml:11: plans[0].prices[0].tiered_config")


def test_dangling_references_are_all_reported(tmp_path):
    customers = CUSTOMERS.replace("plan_id: pro", "plan_id: gold").replace(
        "customer_id: c1", "customer_id: c9")
    plan = PLAN.replace("billable_metric_id: calls", "billable_metric_id: tokens")
    found = problems(write(tmp_path, metrics=METRICS, plans=plan, customers=customers))
    assert found == [
        "plans.yaml:8: plans[0].prices[0].billable_metric_id: unknown metric 'tokens'",
        "customers.yaml:7: subscriptions[0].customer_id: unknown customer 'c9'",
        "customers.yaml:8: subscriptions[0].plan_id: unknown plan 'gold'",
    ]


def test_duplicate_ids_point_at_both_places(tmp_path):
    write(tmp_path, metrics=METRICS, plans=PLAN, customers=CUSTOMERS,
          more=METRICS.replace("name: Calls", "name: Again"))
    found = problems(tmp_path)
    assert found == ["more.yaml:2: metrics[0].id: duplicate id 'calls' "
                     "(first defined at metrics.yaml:2: metrics[0].id)"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("currency: USD", "currency: ABC", "unknown ISO 4217 currency code 'ABC'"),
        ("timezone: Europe/Berlin", "timezone: Mars/Olympus", "unknown IANA time zone"),
        ("model_type: tiered", "model_type: magic", "does not match any of the expected tags"),
    ],
)
def test_bad_values_are_explained(tmp_path, old, new, message):
    text = {"metrics": METRICS, "plans": PLAN, "customers": CUSTOMERS}
    text = {name: body.replace(old, new) for name, body in text.items()}
    found = problems(write(tmp_path, **text))
    assert any(message in problem for problem in found), found


def test_price_needs_metric_or_fixed_quantity(tmp_path):
    plan = PLAN.replace("        billable_metric_id: calls\n", "")
    found = problems(write(tmp_path, metrics=METRICS, plans=plan, customers=CUSTOMERS))
    assert "exactly one of billable_metric_id" in found[0]


def test_phase_coupon_and_adjustment_references_are_checked(tmp_path):
    customers = CUSTOMERS.replace("""    plan_id: pro
    start_date: 2026-01-01
""", """    phases:
      - {plan_id: pro, start_date: 2026-01-01}
      - {plan_id: gold, start_date: 2026-06-01}
    coupons: [{coupon_id: nope}]
    adjustments:
      - {id: cap, adjustment_type: maximum, maximum_amount: "10.00",
         applies_to_price_ids: [other_price]}
""")
    found = problems(write(tmp_path, metrics=METRICS, plans=PLAN, customers=customers))
    assert found == [
        "customers.yaml:10: subscriptions[0].phases[1].plan_id: unknown plan 'gold'",
        "customers.yaml:11: subscriptions[0].coupons[0].coupon_id: unknown coupon 'nope'",
        "customers.yaml:14: subscriptions[0].adjustments[0].applies_to_price_ids: prices "
        "['other_price'] are not on the subscription's plans",
    ]


def test_plan_adjustment_must_name_prices_of_its_version(tmp_path):
    plan = PLAN + """    adjustments:
      - {id: floor, adjustment_type: minimum, minimum_amount: "5", applies_to_price_ids: [x]}
"""
    found = problems(write(tmp_path, metrics=METRICS, plans=plan, customers=CUSTOMERS))
    assert found == ["plans.yaml:2: plans[0]: Value error, adjustment 'floor' applies to "
                     "prices ['x'] not in the same plan version"]


def test_a_catalog_is_parsed_once_per_content_and_again_when_a_file_changes(tmp_path):
    folder = write(tmp_path, metrics=METRICS, plans=PLAN, customers=CUSTOMERS)
    first = load_catalog(folder)
    assert load_catalog(folder) is first  # the same bytes: not parsed again
    # Same size, same second: only the content tells the files apart.
    write(folder, customers=CUSTOMERS.replace("Europe/Berlin", "Europe/Zurich"))
    changed = load_catalog(folder)
    assert changed is not first
    assert changed.customer("c1").timezone == "Europe/Zurich"


def test_a_bad_catalog_fails_every_time_not_only_the_first(tmp_path):
    folder = write(tmp_path, metrics=METRICS, plans=PLAN.replace('"0.10"', "0.10"))
    for _ in range(2):
        assert problems(folder)


SELLER = """\
seller:
  name: Example Cloud, Inc.
  address: {line1: 500 Howard St, city: San Francisco, state: CA, postal_code: "94105",
            country: US}
  tax_id: {country: US, type: us_ein, value: 12-3456789}
  payment_instructions: |
    Wire to First Bank
    Account 000123
  pay_link: https://pay.example.test/{number}
"""


def test_the_seller_section_names_who_issues_the_documents(tmp_path):
    catalog = load_catalog(write(tmp_path, metrics=METRICS, plans=PLAN, seller=SELLER))
    seller = catalog.seller
    assert seller is not None
    assert seller.address is not None and seller.address.lines() == [
        "500 Howard St", "San Francisco, CA 94105", "United States"]
    assert seller.payment_instructions == "Wire to First Bank\nAccount 000123\n"
    assert seller.pay_url("INV-000012") == "https://pay.example.test/INV-000012"
    other = tmp_path / "other"
    other.mkdir()
    assert load_catalog(write(other, metrics=METRICS)).seller is None


def test_a_bad_seller_or_a_second_one_is_refused_with_its_place(tmp_path):
    bad = SELLER.replace("country: US}", "country: XX}").replace("{number}", "{invoice_id}")
    write(tmp_path, metrics=METRICS, plans=PLAN, seller=bad)
    seller = "seller.yaml"
    assert problems(tmp_path) == [
        f"{seller}:4: seller.address.country: Value error, country must be an ISO 3166-1 "
        "alpha-2 code such as US or FR, got 'XX'",
        f"{seller}:9: seller.pay_link: Value error, pay_link may only hold {{number}}, the "
        "invoice's number; got ['invoice_id']"]
    write(tmp_path, seller=SELLER, more=SELLER)  # files are read in name order
    assert problems(tmp_path) == [
        f"{seller}:2: seller: a second seller (the first is at more.yaml:2: "
        "seller)"]
