"""``orb customers``, ``orb subscriptions`` and ``orb state``: the state store of customers,
subscriptions and their changes on the CLI (docs/state.md). Every write is one
transaction, recorded with who made it and when it takes effect; nothing is written when
anything is wrong, and the error names the argument or the file's line or row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from billing.catalog import Catalog, CatalogError, Customer, Subscription
from billing.catalog.adjustments import ADJUSTMENT_TYPES, Adjustment
from cli.options import DATA_DIR, FORMAT, default_actor
from cli.output import console, emit
from pricing_sql.catalog_files import load_catalog
from state import (
    AddAdjustment,
    AddCustomer,
    Cancel,
    ChangePlan,
    CreateSubscription,
    Operation,
    RedeemCoupon,
    SetQuantity,
    StateError,
    StateStore,
    UpdateCustomer,
    Written,
)
from state.imports import read_files
from state.operations import Where, parse_effective
from state.thresholds import parse_threshold, set_threshold
from storage.settings import Settings

ACTOR = click.option("--actor", help="Who makes the change, for the history "
                     "[default: the OS user, else cli].")


def _bad(param: click.Parameter, message: str) -> click.ClickException:
    """A malformed value: exit code 1 and the option named, like every refused write."""
    return click.ClickException(f"{param.opts[0]}: {message}")


def _effective(_ctx: click.Context, _param: click.Parameter,
               value: str | None) -> date | datetime | None:
    if value is None:
        return None
    try:
        return parse_effective(value)
    except ValueError as exc:
        raise _bad(_param, str(exc)) from exc


EFFECTIVE = click.option(
    "--effective", callback=_effective,
    help="When it takes effect: YYYY-MM-DD (midnight in the customer's time zone) or an "
         "ISO 8601 instant with an offset [default: now].")


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None
             ) -> datetime | None:
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad(_param, f"expected an ISO 8601 instant, got {value!r}") from exc
    if instant.tzinfo is None:
        raise _bad(_param, f"{value!r} needs a UTC offset, e.g. {value}Z")
    return instant


AS_RECORDED_AT = click.option(
    "--as-recorded-at", callback=_instant,
    help="Show the state as it was known at this ISO 8601 instant [default: now].")


def _where(options: Mapping[str, str], default: str) -> Where:
    """Problems named by the option that gave the field (the default for the whole)."""

    def where(*field: str | int) -> str:
        if not field or str(field[0]) not in options:
            return default
        index = next((part for part in field[1:] if isinstance(part, int)), None)
        return options[str(field[0])] + ("" if index is None else f" #{index + 1}")

    return where


@contextmanager
def state_store(data_dir: Path) -> Iterator[StateStore]:
    """The store the settings name; a refused write or an unreachable database is an
    error message, not a traceback."""
    url = Settings.from_env(data_dir).state_store_url
    try:
        store = StateStore.open(url)
    except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
        try:
            shown = sa.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = repr(url)
        raise click.ClickException(f"cannot open the state store {shown}: {exc}") from exc
    try:
        yield store
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def catalog_references(data_dir: Path) -> Catalog:
    """The catalog folder's plans and coupons, which subscriptions may name."""
    try:
        return load_catalog(Settings.from_env(data_dir).catalog_path)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc


def import_files(data_dir: Path, files: Sequence[Path]) -> Written:
    """Import customers and subscriptions from ``files`` in one transaction."""
    references = catalog_references(data_dir)
    with state_store(data_dir) as store:
        return store.apply(read_files(list(files), references, store.customer_ids()),
                           references)


def _validated(model: type[Customer] | type[Subscription], values: dict[str, object],
               where: Where) -> Customer | Subscription:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise click.ClickException("nothing was written:\n  " + "\n  ".join(
            f"{where(*(p for p in err['loc'] if p not in ADJUSTMENT_TYPES))}: {err['msg']}"
            for err in exc.errors())) from exc


def _written(written: Written, what: str, actor: str) -> None:
    console.print(f"Recorded {what} at {written.recorded_at.isoformat()} by {actor}")


# -- customers -------------------------------------------------------------------------

CUSTOMER_OPTIONS = {"id": "CUSTOMER_ID", "name": "--name", "email": "--email",
                    "timezone": "--timezone", "external_customer_id": "--external-id",
                    "net_terms": "--net-terms", "billing_address": "--billing-address",
                    "shipping_address": "--shipping-address", "tax_id": "--tax-id"}


@click.group()
def customers() -> None:
    """Customers in the state store: each edit is a new version, in effect from an
    instant."""


def _customer_fields(name: str | None, email: str | None, timezone: str | None,
                     external_id: str | None, net_terms: int | None,
                     parties: dict[str, object]) -> dict[str, object]:
    """The fields given; an empty --email, --external-id or address or tax id clears it."""
    given = {"name": name, "email": email, "timezone": timezone,
             "external_customer_id": external_id, "net_terms": net_terms, **parties}
    return {field: (None if value == "" and field not in ("name", "timezone") else value)
            for field, value in given.items() if value is not None}


def _json_object(_ctx: click.Context, param: click.Parameter,
                 value: str | None) -> dict[str, object] | str | None:
    """A JSON object, or @FILE holding one; "" (to clear) as it is."""
    if not value:
        return value
    try:
        found = json.loads(Path(value[1:]).read_text() if value.startswith("@") else value)
    except (OSError, json.JSONDecodeError) as exc:
        raise _bad(param, str(exc)) from exc
    if not isinstance(found, dict):
        raise _bad(param, f"expected a JSON object, got {value!r}")
    return found


def _parties(billing_address: object, shipping_address: object,
             tax_id: object) -> dict[str, object]:
    return {"billing_address": billing_address, "shipping_address": shipping_address,
            "tax_id": tax_id}


def _party_options(command: Callable[..., None]) -> Callable[..., None]:
    """Orb's customer fields, as JSON objects in Orb's shape."""
    for option in reversed((
            click.option("--billing-address", callback=_json_object,
                         help='Orb\'s Address as JSON (or @FILE): {"line1", "line2", "city", '
                              '"state", "postal_code", "country"}, country ISO 3166 alpha-2; '
                              "printed on invoices. An empty value clears it."),
            click.option("--shipping-address", callback=_json_object,
                         help="Like --billing-address; kept, not printed."),
            click.option("--tax-id", callback=_json_object,
                         help='Orb\'s tax id as JSON: {"country": "FR", "type": "eu_vat", '
                              '"value": "FR12345678901"}. An empty value clears it.'))):
        command = option(command)
    return command


@customers.command("add")
@click.argument("customer_id")
@click.option("--name", required=True)
@click.option("--email")
@click.option("--timezone", help="IANA time zone [default: UTC].")
@click.option("--external-id", help="The id your systems send events with.")
@click.option("--net-terms", type=int, help="Days from invoice to due date [default: 30].")
@_party_options
@EFFECTIVE
@ACTOR
@DATA_DIR
def customers_add(customer_id: str, name: str, email: str | None, timezone: str | None,
                  external_id: str | None, net_terms: int | None, billing_address: object,
                  shipping_address: object, tax_id: object,
                  effective: date | datetime | None, actor: str | None,
                  data_dir: Path) -> None:
    """Add a customer."""
    actor = actor or default_actor()
    where = _where(CUSTOMER_OPTIONS, "CUSTOMER_ID")
    customer = _validated(Customer, {"id": customer_id, **_customer_fields(
        name, email, timezone, external_id, net_terms,
        _parties(billing_address, shipping_address, tax_id))}, where)
    assert isinstance(customer, Customer)
    with state_store(data_dir) as store:
        written = store.apply([AddCustomer(customer, actor, effective, where)], Catalog())
    _written(written, f"customer {customer_id}", actor)


@customers.command("update")
@click.argument("customer_id")
@click.option("--name")
@click.option("--email", help="An empty value clears it.")
@click.option("--timezone")
@click.option("--external-id", help="An empty value clears it.")
@click.option("--net-terms", type=int)
@_party_options
@EFFECTIVE
@ACTOR
@DATA_DIR
def customers_update(customer_id: str, name: str | None, email: str | None,
                     timezone: str | None, external_id: str | None, net_terms: int | None,
                     billing_address: object, shipping_address: object, tax_id: object,
                     effective: date | datetime | None, actor: str | None,
                     data_dir: Path) -> None:
    """Record a new version of a customer: the fields given, from --effective on."""
    values = _customer_fields(name, email, timezone, external_id, net_terms,
                              _parties(billing_address, shipping_address, tax_id))
    if not values:
        raise click.UsageError("give at least one of --name, --email, --timezone, "
                               "--external-id, --net-terms, --billing-address, "
                               "--shipping-address, --tax-id")
    actor = actor or default_actor()
    where = _where(CUSTOMER_OPTIONS, "CUSTOMER_ID")
    with state_store(data_dir) as store:
        written = store.apply([UpdateCustomer(customer_id, values, actor, effective, where)],
                              Catalog())
    _written(written, f"a new version of customer {customer_id} ({', '.join(values)})", actor)


@customers.command("list")
@AS_RECORDED_AT
@FORMAT
@DATA_DIR
def customers_list(as_recorded_at: datetime | None, output_format: str,
                   data_dir: Path) -> None:
    """Customers as known now (or at --as-recorded-at), with their newest version."""
    with state_store(data_dir) as store:
        rows = store.snapshot(as_recorded_at).customers_table().to_pylist()
    emit(output_format, f"Customers ({len(rows)})",
         ("customer_id", "name", "external_customer_id", "email", "timezone", "net_terms",
          "effective_at", "recorded_at", "actor"), rows,
         ("id", "name", "external id", "email", "timezone", "net terms",
          "version in effect from", "recorded at", "by"),
         lambda row: (row["customer_id"], row["name"], row["external_customer_id"] or "",
                      row["email"] or "", row["timezone"], str(row["net_terms"]),
                      _shown(row["effective_at"]), _shown(row["recorded_at"]), row["actor"]),
         right=("net terms",))


def _shown(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# -- subscriptions ---------------------------------------------------------------------

SUBSCRIPTION_OPTIONS = {
    "id": "SUBSCRIPTION_ID", "subscription_id": "SUBSCRIPTION_ID",
    "customer_id": "--customer", "plan_id": "--plan", "plan_version": "--plan-version",
    "start_date": "--start", "end_date": "--end", "trial_end_date": "--trial-end",
    "billing_cycle_day": "--billing-cycle-day",
    "align_billing_with_subscription_start_date": "--align-with-start",
    "coupons": "--coupon", "coupon_id": "--coupon", "adjustments": "--adjustment",
    "adjustment": "--adjustment", "quantity": "--quantity", "price_id": "--price",
    "effective": "--effective",
}


@click.group()
def subscriptions() -> None:
    """Subscriptions in the state store: created once, then changed by plan changes,
    cancellations, coupons, adjustments and quantities, each in effect from an instant."""


def _adjustment(_ctx: click.Context, _param: click.Parameter,
                values: tuple[str, ...]) -> list[Adjustment]:
    """Orb-shaped adjustments as JSON, or @FILE holding it."""
    adapter: TypeAdapter[Adjustment] = TypeAdapter(Adjustment)
    adjustments = []
    for index, value in enumerate(values, start=1):
        try:
            text = Path(value[1:]).read_text() if value.startswith("@") else value
            adjustments.append(adapter.validate_python(json.loads(text)))
        except (OSError, json.JSONDecodeError) as exc:
            raise _bad(_param, f"#{index}: {exc}") from exc
        except ValidationError as exc:
            raise _bad(_param, f"#{index}: " + "; ".join(
                ".".join(str(p) for p in err["loc"] if p not in ADJUSTMENT_TYPES)
                + f": {err['msg']}" for err in exc.errors())) from exc
    return adjustments


ADJUSTMENT = click.option(
    "--adjustment", "adjustments", multiple=True, callback=_adjustment,
    help='An Orb-shaped adjustment as JSON (or @FILE), e.g. \'{"id": "disc", '
         '"adjustment_type": "percentage_discount", "percentage_discount": "0.1"}\'; '
         'a price override is one of these. Repeatable.')


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _bad(_param, f"expected YYYY-MM-DD, got {value!r}") from exc


def _threshold(_ctx: click.Context, _param: click.Parameter,
               value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_threshold(value, _param.opts[0])
    except StateError as exc:
        raise click.ClickException("; ".join(exc.problems)) from exc


@subscriptions.command("create")
@click.argument("subscription_id")
@click.option("--customer", "customer_id", required=True)
@click.option("--plan", "plan_id", required=True)
@click.option("--start", required=True, callback=_day, help="YYYY-MM-DD, customer's date.")
@click.option("--plan-version", type=int, help="Pin a plan version [default: the one in "
              "effect].")
@click.option("--trial-end", callback=_day, help="YYYY-MM-DD; nothing is charged before.")
@click.option("--end", callback=_day, help="YYYY-MM-DD, exclusive; open-ended if omitted.")
@click.option("--billing-cycle-day", type=int, help="1-31 [default: 1, calendar months].")
@click.option("--align-with-start", is_flag=True,
              help="Bill on the start date's day of the month.")
@click.option("--coupon", "coupons", multiple=True, help="A coupon id. Repeatable.")
@ADJUSTMENT
@click.option("--invoicing-threshold", callback=_threshold,
              help="Invoice the period's usage as soon as what is not yet invoiced reaches "
                   "this amount, in the plan's currency (Orb's invoicing_threshold).")
@ACTOR
@DATA_DIR
def subscriptions_create(subscription_id: str, customer_id: str, plan_id: str, start: date,
                         plan_version: int | None, trial_end: date | None, end: date | None,
                         billing_cycle_day: int | None, align_with_start: bool,
                         coupons: tuple[str, ...], adjustments: list[Adjustment],
                         invoicing_threshold: Decimal | None,
                         actor: str | None, data_dir: Path) -> None:
    """Create a subscription: a customer on a plan from a start date."""
    actor = actor or default_actor()
    where = _where(SUBSCRIPTION_OPTIONS, "subscriptions create")
    values: dict[str, object] = {
        "id": subscription_id, "customer_id": customer_id, "plan_id": plan_id,
        "start_date": start, "plan_version": plan_version, "trial_end_date": trial_end,
        "end_date": end, "billing_cycle_day": billing_cycle_day,
        "align_billing_with_subscription_start_date": align_with_start,
        "coupons": [{"coupon_id": c} for c in coupons], "adjustments": adjustments}
    sub = _validated(Subscription, {k: v for k, v in values.items() if v is not None}, where)
    assert isinstance(sub, Subscription)
    references = catalog_references(data_dir)
    with state_store(data_dir) as store:
        written = store.apply([CreateSubscription(sub, actor, where)], references)
        if invoicing_threshold is not None:
            set_threshold(store.engine, subscription_id, invoicing_threshold, actor,
                          from_start=True)
    _written(written, f"subscription {subscription_id} ({written.changes} rows)", actor)


@subscriptions.command("set-threshold")
@click.argument("subscription_id")
@click.argument("amount", metavar="AMOUNT|none")
@EFFECTIVE
@ACTOR
@DATA_DIR
def subscriptions_set_threshold(subscription_id: str, amount: str,
                                effective: date | datetime | None, actor: str | None,
                                data_dir: Path) -> None:
    """Set the subscription's invoicing threshold from --effective on (`none` removes
    it): a threshold invoice is issued mid-period as soon as the period's usage not yet
    invoiced reaches it (docs/invoicing.md#threshold-invoices)."""
    actor = actor or default_actor()
    try:
        threshold = None if amount.lower() == "none" else parse_threshold(amount, "AMOUNT")
    except StateError as exc:
        raise click.ClickException("; ".join(exc.problems)) from exc
    with state_store(data_dir) as store:
        row = set_threshold(store.engine, subscription_id, threshold, actor, effective)
    shown = "removed" if threshold is None else f"{threshold}"
    console.print(f"Invoicing threshold of {subscription_id}: {shown}, effective "
                  f"{row.effective_at.isoformat()} (recorded by {actor})")


@subscriptions.command("change")
@click.argument("subscription_id")
@click.option("--plan", "plan_id", help="Move to this plan from --effective on.")
@click.option("--plan-version", type=int, help="With --plan: pin a version.")
@click.option("--coupon", "coupon_id", help="Redeem this coupon from --effective on.")
@ADJUSTMENT
@click.option("--quantity", help="A fixed fee's quantity from --effective on (as "
              "set-quantity).")
@click.option("--price", "price_id", help="With --quantity: the fixed fee it is for "
              "[default: every fixed fee of the subscription].")
@EFFECTIVE
@ACTOR
@DATA_DIR
def subscriptions_change(subscription_id: str, plan_id: str | None, plan_version: int | None,
                         coupon_id: str | None, adjustments: list[Adjustment],
                         quantity: str | None, price_id: str | None,
                         effective: date | datetime | None, actor: str | None,
                         data_dir: Path) -> None:
    """Change a subscription from --effective on: plan, coupon, adjustments, quantity
    (any of them, in one transaction)."""
    if not (plan_id or coupon_id or adjustments or quantity is not None):
        raise click.UsageError("give at least one of --plan, --coupon, --adjustment, "
                               "--quantity")
    if plan_version is not None and not plan_id:
        raise click.UsageError("--plan-version goes with --plan")
    if price_id is not None and quantity is None:
        raise click.UsageError("--price goes with --quantity")
    actor = actor or default_actor()
    where = _where(SUBSCRIPTION_OPTIONS, "--effective")
    operations: list[Operation] = []
    if plan_id:
        operations.append(ChangePlan(subscription_id, plan_id, actor, plan_version, effective,
                                     where))
    if coupon_id:
        operations.append(RedeemCoupon(subscription_id, coupon_id, actor, effective, where))
    operations += [AddAdjustment(subscription_id, adjustment, actor, effective, where)
                   for adjustment in adjustments]
    if quantity is not None:
        operations.append(SetQuantity(subscription_id, _quantity(quantity), actor, price_id,
                                      effective, where))
    references = catalog_references(data_dir)
    with state_store(data_dir) as store:
        written = store.apply(operations, references)
    _written(written, f"{written.changes} change(s) to subscription {subscription_id}", actor)


def _quantity(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise click.ClickException(f"--quantity: expected a number, got {text!r}") from exc


@subscriptions.command("set-quantity")
@click.argument("subscription_id")
@click.option("--price", "price_id", required=True, help="The fixed fee (a price with "
              "fixed_price_quantity) of the subscription's plan.")
@click.option("--quantity", required=True, help="Its quantity from --effective on: 0 or "
              "more, at most 9 decimal places.")
@EFFECTIVE
@ACTOR
@DATA_DIR
def subscriptions_set_quantity(subscription_id: str, price_id: str, quantity: str,
                               effective: date | datetime | None, actor: str | None,
                               data_dir: Path) -> None:
    """Change a fixed fee's quantity from --effective on (Orb's update_fixed_fee_quantity).
    Billed in arrears, each quantity is charged for its days; billed in advance, the
    period's fee stands and the difference for the rest of the period is charged on an
    invoice dated --effective (an increase) or credited on the next one (a decrease)."""
    actor = actor or default_actor()
    where = _where(SUBSCRIPTION_OPTIONS, "--effective")
    references = catalog_references(data_dir)
    with state_store(data_dir) as store:
        written = store.apply([SetQuantity(subscription_id, _quantity(quantity), actor,
                                           price_id, effective, where)], references)
    _written(written, f"quantity {quantity} of {price_id} on subscription {subscription_id}, "
             f"effective {effective or written.recorded_at.isoformat()}", actor)


@subscriptions.command("cancel")
@click.argument("subscription_id")
@EFFECTIVE
@ACTOR
@DATA_DIR
def subscriptions_cancel(subscription_id: str, effective: date | datetime | None,
                         actor: str | None, data_dir: Path) -> None:
    """End a subscription from --effective on (the end date is exclusive); cancelling
    again moves the end."""
    actor = actor or default_actor()
    where = _where(SUBSCRIPTION_OPTIONS, "--effective")
    with state_store(data_dir) as store:
        written = store.apply([Cancel(subscription_id, actor, effective, where)], Catalog())
    _written(written, f"the cancellation of {subscription_id}, effective "
             f"{effective or written.recorded_at.isoformat()}", actor)


@subscriptions.command("list")
@click.option("--customer", "customer_id", help="Only this customer's.")
@AS_RECORDED_AT
@FORMAT
@DATA_DIR
def subscriptions_list(customer_id: str | None, as_recorded_at: datetime | None,
                       output_format: str, data_dir: Path) -> None:
    """Subscriptions as known now (or at --as-recorded-at), with their phases."""
    with state_store(data_dir) as store:
        snapshot = store.snapshot(as_recorded_at)
        subs = snapshot.subscriptions_table().to_pylist()
        phases = snapshot.phases_table().to_pylist()
    plans: dict[str, list[str]] = {}
    for phase in phases:
        version = f" v{phase['plan_version']}" if phase["plan_version"] else ""
        plans.setdefault(phase["subscription_id"], []).append(
            f"{phase['plan_id']}{version} from {phase['start_date']}")
    if customer_id is not None and customer_id not in {
            c["customer_id"] for c in snapshot.customers_table().to_pylist()}:
        raise click.ClickException(f"unknown customer {customer_id!r}")
    shown = [{
        "subscription_id": sub["subscription_id"], "customer_id": sub["customer_id"],
        "plans": "; ".join(plans[sub["subscription_id"]]), "end_date": sub["end_date"],
        "trial_end_date": sub["trial_end_date"],
        "cycle_day": ("start" if sub["align_billing_with_subscription_start_date"]
                      else str(sub["billing_cycle_day"] or 1)),
        "coupons": ", ".join(c["coupon_id"] for c in json.loads(sub["coupons"] or "[]")),
    } for sub in subs if customer_id is None or sub["customer_id"] == customer_id]
    fields = ("subscription_id", "customer_id", "plans", "end_date", "trial_end_date",
              "cycle_day", "coupons")
    emit(output_format, f"Subscriptions ({len(shown)})", fields, shown,
         ("id", "customer", "plans", "ends", "trial ends", "cycle day", "coupons"),
         lambda sub: [str(sub[f] or "") for f in fields])


# -- import ----------------------------------------------------------------------------


@click.group("state")
def state_group() -> None:
    """The state store as a whole."""


@state_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
def state_import(files: tuple[Path, ...], data_dir: Path) -> None:
    """Import customers and subscriptions from catalog YAML (customers and subscriptions
    sections), CSV or Parquet, in one transaction: nothing is written when any row is
    bad. Customers already in the store get a new version with what differs."""
    written = import_files(data_dir, files)
    console.print(f"Imported {len(files)} file(s) at {written.recorded_at.isoformat()}: "
                  f"{written.customers} new customers, {written.versions} customer versions, "
                  f"{written.subscriptions} new subscriptions, {written.changes} "
                  "subscription rows")
