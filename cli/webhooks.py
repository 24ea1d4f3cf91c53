"""``orb webhooks``: endpoints, one delivery pass, replays, and what the outbox holds and
what was posted (docs/webhooks.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli.options import DATA_DIR, FORMAT, default_actor, existing_data_dir, iso_instant
from cli.output import console, emit
from cli.state import state_store
from storage.settings import Settings
from webhooks import endpoints, log, runs
from webhooks.dispatch import DeliveryOptions, Replay, Summary, deliver


def _endpoint_error(exc: endpoints.EndpointError | endpoints.UnknownEndpoint
                    ) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("webhooks")
def webhooks() -> None:
    """Webhook endpoints, delivery of the outbox's events, replays."""


@webhooks.group("endpoints")
def endpoints_group() -> None:
    """The endpoints events are posted to."""


EVENT_TYPE = click.option("--event-type", "event_types", multiple=True,
                          type=click.Choice(endpoints.EVENT_TYPES),
                          help="Send only these types (repeat it); default every type.")
SIGNATURE_STYLE = click.option("--signature-style",
                               type=click.Choice(endpoints.SIGNATURE_STYLES),
                               help="standard: Standard Webhooks headers; orb: X-Orb-Signature.")
PAYLOAD_STYLE = click.option("--payload-style", type=click.Choice(endpoints.PAYLOAD_STYLES),
                             help="Orb's payload_style, stamped on each body.")


def _show(endpoint: endpoints.Endpoint) -> None:
    types = ", ".join(endpoint.enabled_event_types or ("every type",))
    console.print(f"{endpoint.id} {endpoint.url} ({'enabled' if endpoint.enabled else 'disabled'}"
                  f"; {types}; {endpoint.signature_style} signatures)")


@endpoints_group.command("create")
@click.option("--url", required=True, help="Where events are posted.")
@EVENT_TYPE
@SIGNATURE_STYLE
@PAYLOAD_STYLE
@DATA_DIR
def endpoints_create(url: str, event_types: tuple[str, ...], signature_style: str | None,
                     payload_style: str | None, data_dir: Path) -> None:
    """Add an endpoint; it receives the events appended from now on. Prints its signing
    secret, once."""
    with state_store(existing_data_dir(data_dir)) as store:
        try:
            made = endpoints.create(store.engine, url, datetime.now(UTC), default_actor(),
                                    event_types or None, payload_style or "standard",
                                    signature_style or "standard")
        except endpoints.EndpointError as exc:
            raise _endpoint_error(exc) from exc
    _show(made)
    console.print(f"secret (shown once): {made.secret}", soft_wrap=True)


@endpoints_group.command("list")
@FORMAT
@DATA_DIR
def endpoints_list(output_format: str, data_dir: Path) -> None:
    """Every endpoint, as its newest version has it."""
    with state_store(existing_data_dir(data_dir)) as store:
        found = endpoints.list_endpoints(store.engine)
    records = [{"id": e.id, "url": e.url, "enabled": e.enabled,
                "enabled_event_types": ",".join(e.enabled_event_types or ()),
                "payload_style": e.payload_style, "signature_style": e.signature_style,
                "created_at": e.created_at} for e in found]
    emit(output_format, "Webhook endpoints",
         ["id", "url", "enabled", "enabled_event_types", "payload_style", "signature_style",
          "created_at"], records,
         ["Id", "URL", "Enabled", "Event types", "Signatures"],
         lambda r: [r["id"], r["url"], "yes" if r["enabled"] else "no",
                    r["enabled_event_types"] or "all", r["signature_style"]])


def _update(data_dir: Path, endpoint_id: str, **changes: Any) -> None:
    with state_store(existing_data_dir(data_dir)) as store:
        try:
            changed = endpoints.update(store.engine, endpoint_id, datetime.now(UTC),
                                       default_actor(), **changes)
        except (endpoints.EndpointError, endpoints.UnknownEndpoint) as exc:
            raise _endpoint_error(exc) from exc
    _show(changed)


@endpoints_group.command("update")
@click.argument("endpoint_id")
@click.option("--url", help="A new URL.")
@EVENT_TYPE
@click.option("--all-event-types", is_flag=True, help="Send every type again.")
@SIGNATURE_STYLE
@PAYLOAD_STYLE
@DATA_DIR
def endpoints_update(endpoint_id: str, url: str | None, event_types: tuple[str, ...],
                     all_event_types: bool, signature_style: str | None,
                     payload_style: str | None, data_dir: Path) -> None:
    """Change an endpoint's URL, event types or styles (a new version)."""
    if event_types and all_event_types:
        raise click.UsageError("give --event-type or --all-event-types, not both")
    changes: dict[str, Any] = {"url": url, "signature_style": signature_style,
                               "payload_style": payload_style}
    if event_types:
        changes["enabled_event_types"] = list(event_types)
    elif all_event_types:
        changes["enabled_event_types"] = None
    _update(data_dir, endpoint_id, **changes)


@endpoints_group.command("disable")
@click.argument("endpoint_id")
@DATA_DIR
def endpoints_disable(endpoint_id: str, data_dir: Path) -> None:
    """Stop posting to an endpoint; its events wait until it is enabled again."""
    _update(data_dir, endpoint_id, enabled=False)


@endpoints_group.command("enable")
@click.argument("endpoint_id")
@DATA_DIR
def endpoints_enable(endpoint_id: str, data_dir: Path) -> None:
    """Post to an endpoint again, from the oldest event it has not received."""
    _update(data_dir, endpoint_id, enabled=True)


TIMEOUT = click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0,
                       show_default=True, help="Seconds one POST may take.")
CONCURRENCY = click.option("--concurrency", type=click.IntRange(min=1), default=8,
                           show_default=True, help="Lanes (customers) posted at once.")


@webhooks.command("deliver")
@TIMEOUT
@CONCURRENCY
@DATA_DIR
def deliver_command(timeout: float, concurrency: int, data_dir: Path) -> None:
    """One pass: append the events time and the lake have made true, post what is due,
    mirror the outbox to the lake."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    with state_store(data_dir) as store:
        result = runs.run_once(settings.lake, store.engine,
                               options=DeliveryOptions(timeout=timeout,
                                                       concurrency=concurrency))
    summary = result.delivery
    console.print(f"{result.appended} new events; {summary.delivered} delivered, "
                  f"{summary.retrying} to retry, {summary.failed} failed; "
                  f"{result.mirrored} mirrored to the lake" + _held(summary))


def _held(summary: Summary) -> str:
    if not summary.skipped_lanes:
        return ""
    return (f"; {summary.skipped_lanes} customers' events held by another dispatcher "
            "(its pass posts them, or run again when its lease ends)")


@webhooks.command("replay")
@click.option("--since", required=True, callback=iso_instant,
              help="Events created at or after this instant (ISO 8601 with offset).")
@click.option("--until", callback=iso_instant, help="... and before this one.")
@click.option("--endpoint", "endpoint_id", help="Only to this endpoint.")
@TIMEOUT
@CONCURRENCY
@DATA_DIR
def replay_command(since: datetime, until: datetime | None, endpoint_id: str | None,
                   timeout: float, concurrency: int, data_dir: Path) -> None:
    """Post a range of events again, with their own ids (new attempts of the same
    events)."""
    if until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    with state_store(existing_data_dir(data_dir)) as store:
        try:
            summary = deliver(store.engine, options=DeliveryOptions(
                timeout=timeout, concurrency=concurrency),
                replay=Replay(since, until, endpoint_id))
        except endpoints.UnknownEndpoint as exc:
            raise _endpoint_error(exc) from exc
    console.print(f"{summary.delivered} delivered, {summary.failed} failed "
                  f"(a failure stops its customer's later events)" + _held(summary))


@webhooks.command("events")
@click.option("--since", callback=iso_instant, help="Created at or after (ISO 8601).")
@click.option("--until", callback=iso_instant, help="Created before (ISO 8601).")
@click.option("--type", "event_type", type=click.Choice(endpoints.EVENT_TYPES))
@FORMAT
@DATA_DIR
def events_command(since: datetime | None, until: datetime | None, event_type: str | None,
                   output_format: str, data_dir: Path) -> None:
    """The outbox's events, in sequence."""
    with state_store(existing_data_dir(data_dir)) as store:
        found = log.events(store.engine, since, until, event_type)
    records = [vars(row) for row in found]
    emit(output_format, "Outbox", ["sequence", "event_id", "type", "customer_id",
                                   "created_at", "recorded_at"], records,
         ["Seq", "Event", "Type", "Customer", "Created"],
         lambda r: [str(r["sequence"]), r["event_id"], r["type"], r["customer_id"] or "",
                    r["created_at"].isoformat()], right=["Seq"])


@webhooks.command("attempts")
@click.argument("event_id")
@FORMAT
@DATA_DIR
def attempts_command(event_id: str, output_format: str, data_dir: Path) -> None:
    """Every attempt to post one event, per endpoint."""
    with state_store(existing_data_dir(data_dir)) as store:
        try:
            found = log.attempts(store.engine, event_id)
        except KeyError as exc:
            raise click.ClickException(exc.args[0]) from exc
    records = [vars(row) for row in found]
    emit(output_format, f"Attempts of {event_id}",
         ["endpoint_id", "attempt", "started_at", "status_code", "outcome",
          "next_attempt_at", "error"], records,
         ["Endpoint", "#", "Started", "Status", "Outcome", "Next attempt", "Error"],
         lambda r: [r["endpoint_id"], str(r["attempt"]), r["started_at"].isoformat(),
                    "" if r["status_code"] is None else str(r["status_code"]), r["outcome"],
                    "" if r["next_attempt_at"] is None else r["next_attempt_at"].isoformat(),
                    r["error"] or ""], right=["#", "Status"])
