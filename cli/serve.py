"""``orb serve``, ``orb keys``, ``orb tenants`` and ``orb audit``: the Orb-compatible API,
its keys, its tenants and its audit trail (docs/api.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from api.registry import DEFAULT_TENANT, ROLES
from api.server import open_registry
from api.server import serve as serve_api
from api.shapes import instant
from cli.options import FORMAT, data_dir_option
from cli.output import console, emit

DATA_DIR = data_dir_option(help="The default tenant's deployment; the registry is "
                                "<data dir>/api.db unless ORB_API_REGISTRY_URL names another.")


@click.command()
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback only, unless API keys are required and one exists.")
@click.option("--port", default=8089, show_default=True)
def serve(data_dir: Path, host: str, port: int) -> None:
    """Serve the Orb-compatible API under /v1 (OpenAPI at /v1/openapi.json)."""
    try:
        serve_api(data_dir, host, port)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def keys() -> None:
    """API keys: each has a role and belongs to one tenant."""


@keys.command("create")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--description")
@DATA_DIR
def keys_create(tenant: str, role: str, description: str | None, data_dir: Path) -> None:
    """Create a key; its secret is printed once and never kept."""
    registry = open_registry(data_dir)
    try:
        key, secret = registry.create_key(tenant, role, description)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        registry.close()
    console.print(f"Created {key.key_id} ({key.role}, tenant {key.tenant_id}). Its secret, "
                  "shown this once:")
    click.echo(secret)


@keys.command("list")
@FORMAT
@DATA_DIR
def keys_list(output_format: str, data_dir: Path) -> None:
    """Every key, with its tenant, role and whether it is revoked (never its secret)."""
    registry = open_registry(data_dir)
    try:
        listed = registry.keys()
    finally:
        registry.close()
    fields = ("key_id", "tenant_id", "role", "created_at", "revoked_at", "description")
    records = [{"key_id": key.key_id, "tenant_id": key.tenant_id, "role": key.role,
                "created_at": instant(key.created_at), "revoked_at": instant(key.revoked_at),
                "description": key.description} for key in listed]
    emit(output_format, f"API keys ({len(listed)})", fields, records,
         ("key", "tenant", "role", "created", "revoked", "description"),
         lambda r: [r[f] or "" for f in fields])


@keys.command("revoke")
@click.argument("key_id")
@DATA_DIR
def keys_revoke(key_id: str, data_dir: Path) -> None:
    """Revoke a key: it is refused from the next request on."""
    registry = open_registry(data_dir)
    try:
        key = registry.revoke_key(key_id)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        registry.close()
    console.print(f"Revoked {key.key_id} at {instant(key.revoked_at)}")


@click.group()
def tenants() -> None:
    """Tenants: each its own deployment (data folder: state store, catalog, lake)."""


@tenants.command("add")
@click.argument("tenant_id")
@click.option("--tenant-data-dir", "tenant_dir", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The tenant's own data folder (its catalog/, state store and lake).")
@DATA_DIR
def tenants_add(tenant_id: str, tenant_dir: Path, data_dir: Path) -> None:
    """Add a tenant whose deployment is TENANT_DATA_DIR."""
    registry = open_registry(data_dir)
    try:
        registry.add_tenant(tenant_id, tenant_dir.resolve())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        registry.close()
    console.print(f"Added tenant {tenant_id}: {tenant_dir.resolve()}")


@tenants.command("list")
@FORMAT
@DATA_DIR
def tenants_list(output_format: str, data_dir: Path) -> None:
    """Every tenant and its data folder."""
    registry = open_registry(data_dir)
    try:
        listed = registry.tenants()
    finally:
        registry.close()
    emit(output_format, f"Tenants ({len(listed)})", ("tenant_id", "data_dir"),
         [{"tenant_id": t, "data_dir": folder} for t, folder in listed.items()],
         ("tenant", "data folder"), lambda r: (r["tenant_id"], r["data_dir"]))


@click.command()
@click.option("--tenant", help="Only this tenant's writes [default: every tenant's].")
@click.option("--limit", default=50, show_default=True)
@FORMAT
@DATA_DIR
def audit(tenant: str | None, limit: int, output_format: str, data_dir: Path) -> None:
    """The API's audit trail, newest last: who wrote what, when, before and after."""
    registry = open_registry(data_dir)
    try:
        events = registry.audit_events(tenant)[-limit:]
    finally:
        registry.close()
    fields = ("at", "tenant_id", "key_id", "role", "request", "resource", "change")
    records = [{
        "at": instant(event.at), "tenant_id": event.tenant_id, "key_id": event.key_id,
        "role": event.role, "request": f"{event.method} {event.path}",
        "resource": f"{event.resource} {event.resource_id}",
        "change": "created" if event.before is None else json.dumps(sorted(
            k for k in event.after if event.before.get(k) != event.after[k])),
    } for event in events]
    emit(output_format, f"Audit events (showing {len(events)})", fields, records,
         ("at", "tenant", "key", "role", "request", "resource", "change"),
         lambda r: [r[f] or ("(no key)" if f == "key_id" else "") for f in fields])


COMMANDS = (serve, keys, tenants, audit)
