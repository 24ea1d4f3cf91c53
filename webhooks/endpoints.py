"""Webhook endpoints (Orb's ``webhook_endpoints`` resource): created once with a secret,
every later edit (url, event types, payload style, enabled) a new version. The CLI
(``orb webhooks endpoints``) and the API (``/v1/webhook_endpoints``) both write through
these functions (docs/webhooks.md#endpoints)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa

from state import outbox, schema
from state.database import reading, writing

PayloadStyle = Literal["expanded", "standard"]
SignatureStyle = Literal["standard", "orb"]
PAYLOAD_STYLES: tuple[PayloadStyle, ...] = ("standard", "expanded")
SIGNATURE_STYLES: tuple[SignatureStyle, ...] = ("standard", "orb")

# The event types this project sends (docs/webhooks.md#events-and-where-they-come-from);
# an endpoint may ask for these only.
EVENT_TYPES = (
    "customer.created", "customer.edited",
    "customer.credit_balance_depleted", "customer.credit_balance_dropped",
    "customer.credit_balance_recovered",
    "subscription.created", "subscription.started", "subscription.ended",
    "subscription.plan_changed", "subscription.plan_change_scheduled",
    "subscription.cancellation_scheduled", "subscription.fixed_fee_quantity_updated",
    "subscription.usage_exceeded", "subscription.cost_exceeded",
    "subscription.invoicing_threshold_exceeded",
    "invoice.issued", "invoice.payment_succeeded", "invoice.payment_failed",
    "invoice.manually_marked_as_paid", "invoice.manually_marked_as_void", "invoice.edited",
    "invoice.dunning_schedule_step_executed",
    "credit_note.issued", "data_exports.transfer_success",
)


class EndpointError(ValueError):
    """A refused endpoint write; the message names the field."""


class UnknownEndpoint(KeyError):
    def __init__(self, endpoint_id: str):
        super().__init__(endpoint_id)
        self.endpoint_id = endpoint_id

    def __str__(self) -> str:
        return f"unknown webhook endpoint {self.endpoint_id!r}"


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    enabled: bool
    enabled_event_types: tuple[str, ...] | None  # None: every type
    payload_style: PayloadStyle
    signature_style: SignatureStyle
    created_at: datetime
    after_sequence: int  # it receives the events after this sequence
    secret: str

    def receives(self, event_type: str) -> bool:
        return self.enabled_event_types is None or event_type in self.enabled_event_types

    def as_orb(self, with_secret: bool = False) -> dict[str, Any]:
        """Orb's WebhookEndpoint (WebhookEndpointWithSecret when ``with_secret``)."""
        shown = {"id": self.id, "url": self.url, "enabled": self.enabled,
                 "enabled_event_types": (None if self.enabled_event_types is None
                                         else list(self.enabled_event_types)),
                 "payload_style": self.payload_style,
                 "created_at": self.created_at.isoformat().replace("+00:00", "Z")}
        return shown | ({"secret": self.secret} if with_secret else {})


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: str, field: str = "url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"{field}: expected an http(s) URL with a host, got {url!r}")
    return url


def check_event_types(types: Sequence[str] | None,
                      field: str = "enabled_event_types") -> tuple[str, ...] | None:
    if types is None:
        return None
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise EndpointError(f"{field}: unknown event types {unknown} (known: "
                            f"{', '.join(EVENT_TYPES)})")
    if not types:
        raise EndpointError(f"{field}: give at least one event type, or none for all")
    return tuple(dict.fromkeys(types))


def _choice(value: str, allowed: Sequence[str], field: str) -> Any:
    if value not in allowed:
        raise EndpointError(f"{field}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def create(engine: sa.Engine, url: str, at: datetime, actor: str,
           enabled_event_types: Sequence[str] | None = None,
           payload_style: str = "standard", signature_style: str = "standard") -> Endpoint:
    """A new endpoint, receiving the events appended from now on."""
    endpoint_id = "whe_" + secrets.token_hex(8)
    with writing(engine) as connection:
        endpoint = Endpoint(endpoint_id, check_url(url), True,
                            check_event_types(enabled_event_types),
                            _choice(payload_style, PAYLOAD_STYLES, "payload_style"),
                            _choice(signature_style, SIGNATURE_STYLES, "signature_style"),
                            at, outbox.newest_sequence(connection), new_secret())
        connection.execute(sa.insert(schema.webhook_endpoints).values(
            endpoint_id=endpoint_id, secret=endpoint.secret,
            after_sequence=endpoint.after_sequence, recorded_at=at, actor=actor))
        _version(connection, endpoint, at, actor)
    return endpoint


def _version(connection: sa.Connection, endpoint: Endpoint, at: datetime, actor: str) -> None:
    connection.execute(sa.insert(schema.webhook_endpoint_versions).values(
        endpoint_id=endpoint.id, url=endpoint.url, enabled=endpoint.enabled,
        enabled_event_types=(None if endpoint.enabled_event_types is None
                             else json.dumps(list(endpoint.enabled_event_types))),
        payload_style=endpoint.payload_style, signature_style=endpoint.signature_style,
        recorded_at=at, actor=actor))


def read_all(connection: sa.Connection) -> list[Endpoint]:
    """Every endpoint as its newest version has it, in the order created."""
    heads, versions = schema.webhook_endpoints, schema.webhook_endpoint_versions
    newest = (sa.select(sa.func.max(versions.c.version_id))
              .group_by(versions.c.endpoint_id).scalar_subquery())
    query = (sa.select(heads, versions.c.url, versions.c.enabled,
                       versions.c.enabled_event_types, versions.c.payload_style,
                       versions.c.signature_style)
             .join(versions, versions.c.endpoint_id == heads.c.endpoint_id)
             .where(versions.c.version_id.in_(newest))
             .order_by(heads.c.recorded_at, heads.c.endpoint_id))
    return [Endpoint(row.endpoint_id, row.url, row.enabled,
                     None if row.enabled_event_types is None
                     else tuple(json.loads(row.enabled_event_types)),
                     row.payload_style, row.signature_style, row.recorded_at,
                     row.after_sequence, row.secret)
            for row in connection.execute(query)]


def list_endpoints(engine: sa.Engine) -> list[Endpoint]:
    with reading(engine) as connection:
        return read_all(connection)


def get(engine: sa.Engine, endpoint_id: str) -> Endpoint:
    with reading(engine) as connection:
        return _find(connection, endpoint_id)


def _find(connection: sa.Connection, endpoint_id: str) -> Endpoint:
    for endpoint in read_all(connection):
        if endpoint.id == endpoint_id:
            return endpoint
    raise UnknownEndpoint(endpoint_id)


_UNCHANGED: Any = object()


def update(engine: sa.Engine, endpoint_id: str, at: datetime, actor: str, *,
           url: str | None = None, enabled: bool | None = None,
           enabled_event_types: Sequence[str] | None = _UNCHANGED,
           payload_style: str | None = None, signature_style: str | None = None) -> Endpoint:
    """A new version with the given fields changed (``enabled_event_types=None``: every
    type; left out: unchanged)."""
    with writing(engine) as connection:
        current = _find(connection, endpoint_id)
        changed = replace(
            current,
            url=current.url if url is None else check_url(url),
            enabled=current.enabled if enabled is None else enabled,
            enabled_event_types=(current.enabled_event_types
                                 if enabled_event_types is _UNCHANGED
                                 else check_event_types(enabled_event_types)),
            payload_style=(current.payload_style if payload_style is None
                           else _choice(payload_style, PAYLOAD_STYLES, "payload_style")),
            signature_style=(current.signature_style if signature_style is None
                             else _choice(signature_style, SIGNATURE_STYLES,
                                          "signature_style")))
        if changed != current:
            _version(connection, changed, at, actor)
    return changed
