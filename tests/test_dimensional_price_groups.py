"""Orb's dimensional price groups: prices on one metric, each rating the events whose
group dimensions equal its values; checked at load with file and line; served by the API
in Orb's shape through the official SDK (with each price's own billing cycle)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import orb
import pytest
import yaml
from orb.types import DimensionalPriceGroup as OrbGroup

from billing.catalog import CatalogError, parse_catalog
from ingestion.batches import ingest_files
from pricing_sql.rating import compute_usage, price_line_items
from storage.duck import connect
from storage.lake import Lake
from tests.api_tenants import API_VARIABLES, create_key, serve
from tests.batches import batch
from tests.catalogs import unit, write_data_dir

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 10, tzinfo=UTC)
TOKENS = "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'"


def completion(key, tokens, day, **properties):
    return {"event_name": "completion", "timestamp": f"2026-10-{day:02d}T12:00:00Z",
            "customer_id": "c1", "idempotency_key": key,
            "properties": {"tokens": tokens, **properties}}


# c1's October: us 10 + 5 tokens, eu 20 + 3 (one on the gpu tier), 7 with no region
EVENTS = [completion("a", 10, 5, region="us"), completion("b", 5, 9, region="us"),
          completion("c", 20, 10, region="eu"), completion("d", 3, 20, region="eu",
                                                           tier="gpu"),
          completion("e", 7, 21)]

GROUPS = [{"id": "by_region", "name": "By region", "billable_metric_id": "tokens",
           "dimensions": ["region"], "external_dimensional_price_group_id": "region-ext",
           "metadata": {"team": "infra"}},
          {"id": "by_region_tier", "name": "By region and tier", "billable_metric_id": "tokens",
           "dimensions": ["region", "tier"]}]


def dimensional(price_id, amount, values, group="by_region", external=False):
    key = "external_dimensional_price_group_id" if external else "dimensional_price_group_id"
    return {**unit(price_id, amount, metric="tokens"),
            "dimensional_price_configuration": {"dimension_values": values, key: group}}


def sections(prices, groups=GROUPS):
    return {
        "metrics": [{"id": "tokens", "name": "Tokens", "sql": TOKENS},
                    {"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
        "dimensional_price_groups": groups,
        "plans": [{"id": "p", "name": "P", "currency": "USD", "prices": prices}],
        "customers": [{"id": "c1", "name": "c1"}],
        "subscriptions": [{"id": "s1", "customer_id": "c1", "plan_id": "p",
                           "start_date": "2026-01-01"}]}


def parsed(prices, groups=GROUPS):
    return parse_catalog([("catalog.yaml", yaml.safe_dump(sections(prices, groups),
                                                          sort_keys=False))])


def test_two_prices_on_one_metric_split_by_region(tmp_path):
    cat = parsed([dimensional("us", "0.10", ["us"]),
                  dimensional("eu", "0.20", ["eu"], group="region-ext",
                              external=True),
                  dimensional("eu_gpu", "1.00", ["eu", "gpu"], group="by_region_tier")])
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl", *EVENTS)], NOW)
    usage = compute_usage(connect(), lake, cat, OCTOBER).usage
    lines = {line["price_id"]: (line["quantity"], line["amount"]) for line in
             price_line_items(connect(), cat, OCTOBER, usage).line_items.to_pylist()}
    # us: 10 + 5 = 15 tokens x 0.10 = 1.50; eu: 20 + 3 = 23 x 0.20 = 4.60;
    # eu on the gpu tier: 3 x 1.00 = 3.00; the 7 tokens with no region are in none
    assert lines == {"us": (15, Decimal("1.50")), "eu": (23, Decimal("4.60")),
                     "eu_gpu": (3, Decimal("3.00"))}
    assert sorted((row["metric_id"], row["quantity"]) for row in usage.to_pylist()) == [
        ("calls", 5), ("tokens", 45),
        ("tokens IN by_region ('us')", 15),
        ("tokens IN by_region_tier ('eu', 'gpu')", 3),
        ("tokens IN external:region-ext ('eu')", 23)]


def test_a_value_is_compared_as_text_and_quoted_safely(tmp_path):
    cat = parsed([dimensional("odd", "1.00", ["o'brien"])])
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat, [batch(tmp_path / "october.jsonl",
                                              completion("a", 4, 5, region="o'brien"),
                                              completion("b", 9, 6, region="us"))], NOW)
    usage = compute_usage(connect(), lake, cat, OCTOBER).usage
    (line,) = price_line_items(connect(), cat, OCTOBER, usage).line_items.to_pylist()
    assert (line["quantity"], line["amount"]) == (4, Decimal("4.00"))  # 4 x 1.00


def line_of(text, needle, after=0):
    """1-based number of the first line from ``after`` that contains ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), start=1)
                if n > after and needle in line)


@pytest.mark.parametrize(("price", "field", "message"), [
    (dimensional("us", "0.10", ["us"], group="by_country"),
     "dimensional_price_group_id", "unknown dimensional price group 'by_country'"),
    (dimensional("us", "0.10", ["us"], group="nope", external=True),
     "external_dimensional_price_group_id", "unknown dimensional price group 'nope'"),
    (dimensional("us", "0.10", ["us", "gpu"]), "dimension_values",
     "2 value(s) for group 'by_region''s 1 dimension(s) ['region']"),
    ({**dimensional("us", "0.10", ["us"]), "billable_metric_id": "calls"},
     "dimensional_price_configuration",
     "group 'by_region' is on metric 'tokens', the price on 'calls'"),
])
def test_a_wrong_dimensional_price_is_refused_with_file_and_line(price, field, message):
    text = yaml.safe_dump(sections([price]), sort_keys=False)
    with pytest.raises(CatalogError) as error:
        parse_catalog([("catalog.yaml", text)])
    prices = line_of(text, "prices:")
    # the loader names the value's line: the next one for a list or mapping value
    line = line_of(text, f"{field}:", after=prices) + (
        field in ("dimension_values", "dimensional_price_configuration"))
    path = "plans[0].prices[0].dimensional_price_configuration"
    path += "" if field == "dimensional_price_configuration" else f".{field}"
    assert error.value.problems == [f"catalog.yaml:{line}: {path}: {message}"]


def test_a_group_on_an_unknown_metric_and_a_fixed_fee_with_values_are_refused():
    group = {**GROUPS[0], "billable_metric_id": "seats"}
    text = yaml.safe_dump(sections([unit("fee", "1.00", fixed_quantity=1)], [group]),
                          sort_keys=False)
    with pytest.raises(CatalogError) as error:
        parse_catalog([("catalog.yaml", text)])
    line = line_of(text, "billable_metric_id: seats")
    assert error.value.problems == [
        f"catalog.yaml:{line}: dimensional_price_groups[0].billable_metric_id: unknown "
        "metric 'seats'"]
    fee = {**unit("fee", "1.00", fixed_quantity=1), "dimensional_price_configuration": {
        "dimension_values": ["us"], "dimensional_price_group_id": "by_region"}}
    with pytest.raises(CatalogError, match="a fixed fee has none"):
        parsed([fee])


# ---- the API, through Orb's SDK ----------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        write_data_dir(root, sections([
            dimensional("us", "0.10", ["us"]),
            dimensional("eu", "0.20", ["eu"], group="region-ext", external=True),
            {**unit("fortnight", "0.01", metric="calls"), "cadence": "custom",
             "billing_cycle_configuration": {"duration": 14, "duration_unit": "day"}},
            {**unit("setup", "500.00", fixed_quantity=1), "cadence": "one_time"}]))
        key = create_key(root, "read_only")
    with serve(root) as url:
        yield orb.Orb(api_key=key, base_url=f"{url}/v1", max_retries=0)


def test_the_api_lists_and_fetches_groups_in_orbs_shape(client):
    groups = list(client.dimensional_price_groups.list())
    assert all(isinstance(group, OrbGroup) for group in groups)
    by_id = {group.id: group for group in groups}
    assert sorted(by_id) == ["by_region", "by_region_tier"]
    region = by_id["by_region"]
    # two prices name it, one by its id and one by its external id
    assert (region.name, region.billable_metric_id, region.dimensions,
            region.external_dimensional_price_group_id, region.metadata,
            region.price_count) == ("By region", "tokens", ["region"], "region-ext",
                                    {"team": "infra"}, 2)
    assert client.dimensional_price_groups.retrieve("by_region") == region
    assert client.dimensional_price_groups.external_dimensional_price_group_id.retrieve(
        "region-ext") == region
    with pytest.raises(orb.NotFoundError):
        client.dimensional_price_groups.retrieve("by_country")
    # a price names its group by Orb's id, whichever id the catalog gave
    prices = {p.id: p for p in client.plans.fetch("p").prices}
    assert prices["eu"].dimensional_price_configuration.model_dump() == {
        "dimension_values": ["eu"], "dimensional_price_group_id": "by_region"}
    assert prices["us"].dimensional_price_configuration.dimensional_price_group_id == \
        "by_region"
    assert prices["fortnight"].dimensional_price_configuration is None


def test_the_api_shows_each_prices_own_cycle(client):
    prices = {p.id: p for p in client.plans.fetch("p").prices}
    cycles = {price_id: (p.cadence, p.billing_cycle_configuration.duration,
                         p.billing_cycle_configuration.duration_unit, p.billing_mode)
              for price_id, p in prices.items()}
    assert cycles == {"us": ("monthly", 1, "month", "in_arrear"),
                      "eu": ("monthly", 1, "month", "in_arrear"),
                      "fortnight": ("custom", 14, "day", "in_arrear"),
                      "setup": ("one_time", 1, "day", "in_advance")}
