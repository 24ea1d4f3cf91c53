"""The API registry (docs/api.md): tenants (each its own deployment, a data folder with its
state store and lake), API keys with a role, the audit trail and idempotent responses.

SQLite at ``<ORB_DATA_DIR>/api.db`` by default, ``ORB_API_REGISTRY_URL`` for another
SQLAlchemy URL; migrated with Alembic (``api/migrations/``) like the state store, and
written through the state store's serialized transactions (``state.database``).

A key's secret is shown once, when created; the registry keeps only its HMAC-SHA256 under
a pepper (``ORB_API_KEY_PEPPER``, else a random one kept in ``api.pepper`` beside a SQLite
registry, readable by its owner only), so a copy of the database alone does not let
anyone in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from api import schema
from api.schema import VERSION_TABLE
from state.database import create_engine, reading, writing
from storage.settings import Settings

Role = Literal["read_only", "billing_operator", "admin"]
ROLES: tuple[Role, ...] = ("read_only", "billing_operator", "admin")
DEFAULT_TENANT = "default"
REGISTRY_VARIABLE = "ORB_API_REGISTRY_URL"
PEPPER_VARIABLE = "ORB_API_KEY_PEPPER"
SECRET_PREFIX = "orb_sk_"
MIGRATIONS = Path(__file__).parent / "migrations"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    role: Role
    description: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditEvent:
    audit_id: int
    tenant_id: str
    key_id: str | None
    role: str
    at: datetime
    method: str
    path: str
    resource: str
    resource_id: str
    before: Any
    after: Any


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: bytes


def registry_url(data_dir: str | Path | None = None) -> str:
    """``ORB_API_REGISTRY_URL``, else ``<data dir>/api.db`` (``ORB_DATA_DIR``'s)."""
    return os.environ.get(REGISTRY_VARIABLE) or (
        f"sqlite:///{Path(Settings.from_env(data_dir).data_dir) / 'api.db'}")


def _pepper(url: str) -> bytes:
    if pepper := os.environ.get(PEPPER_VARIABLE):
        return pepper.encode()
    database = sa.make_url(url).database
    if sa.make_url(url).get_backend_name() != "sqlite" or not database or database == ":memory:":
        raise ValueError(f"set {PEPPER_VARIABLE}: the registry at {url} has no folder to keep "
                         "a generated pepper in")
    path = Path(database).with_name("api.pepper")
    try:
        # created once, readable by its owner only; a concurrent creator's file wins
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return path.read_bytes().strip()


class Registry:
    def __init__(self, engine: sa.Engine, pepper: bytes, default_data_dir: str,
                 clock: Clock = utc_now):
        self.engine = engine
        self.pepper = pepper
        self.default_data_dir = default_data_dir
        self.clock = clock

    @classmethod
    def open(cls, url: str, default_data_dir: str | Path, clock: Clock = utc_now) -> Registry:
        """The registry at ``url``, migrated to the newest schema; the default tenant is
        ``default_data_dir``'s deployment."""
        engine = create_engine(url)
        _upgrade(engine)
        return cls(engine, _pepper(url), str(default_data_dir), clock)

    def close(self) -> None:
        self.engine.dispose()

    # -- tenants ---------------------------------------------------------------------

    def add_tenant(self, tenant_id: str, data_dir: str | Path) -> None:
        if tenant_id == DEFAULT_TENANT:
            raise ValueError(f"{DEFAULT_TENANT!r} is the server's own data folder "
                             "(--data-dir / ORB_DATA_DIR); choose another tenant id")
        with writing(self.engine) as connection:
            if self._tenant_dir(connection, tenant_id) is not None:
                raise ValueError(f"tenant {tenant_id!r} exists already")
            connection.execute(sa.insert(schema.tenants).values(
                tenant_id=tenant_id, data_dir=str(data_dir), created_at=self.clock()))

    def tenants(self) -> dict[str, str]:
        """Every tenant's data folder, the default one's first."""
        with reading(self.engine) as connection:
            rows = connection.execute(sa.select(schema.tenants.c.tenant_id,
                                                schema.tenants.c.data_dir)
                                      .order_by(schema.tenants.c.tenant_id)).all()
        return {DEFAULT_TENANT: self.default_data_dir,
                **{t: d for t, d in rows if t != DEFAULT_TENANT}}

    def tenant_settings(self, tenant_id: str) -> Settings:
        """The tenant's deployment: its data folder, the rest of the settings from
        ``ORB_*`` as for the CLI. ``ORB_STATE_URL`` and ``ORB_CATALOG_DIR`` apply to the
        default tenant only; another tenant's store and catalog are in its folder."""
        if tenant_id == DEFAULT_TENANT:
            return Settings.from_env(self.default_data_dir)
        with reading(self.engine) as connection:
            data_dir = self._tenant_dir(connection, tenant_id)
        if data_dir is None:
            raise KeyError(tenant_id)
        return dataclasses.replace(Settings.from_env(data_dir), state_url="", catalog_dir="")

    @staticmethod
    def _tenant_dir(connection: sa.Connection, tenant_id: str) -> str | None:
        return connection.execute(sa.select(schema.tenants.c.data_dir).where(
            schema.tenants.c.tenant_id == tenant_id)).scalar()

    # -- keys ------------------------------------------------------------------------

    def create_key(self, tenant_id: str, role: Role, description: str | None = None
                   ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is not kept and cannot be shown again."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(f"key_{secrets.token_hex(8)}", tenant_id, role, description,
                     self.clock(), None)
        with writing(self.engine) as connection:
            if tenant_id != DEFAULT_TENANT and self._tenant_dir(connection, tenant_id) is None:
                raise ValueError(f"unknown tenant {tenant_id!r}: add it first with "
                                 f"`orb tenants add {tenant_id} --data-dir DIR`")
            if tenant_id == DEFAULT_TENANT:
                self._ensure_default(connection)
            connection.execute(sa.insert(schema.api_keys).values(
                key_id=key.key_id, tenant_id=tenant_id, role=role, description=description,
                secret_hash=self._hash(secret), created_at=key.created_at))
        return key, secret

    def _ensure_default(self, connection: sa.Connection) -> None:
        # The default tenant's row holds no folder of its own (the server's is used);
        # it is there for the keys' foreign key.
        if self._tenant_dir(connection, DEFAULT_TENANT) is None:
            connection.execute(sa.insert(schema.tenants).values(
                tenant_id=DEFAULT_TENANT, data_dir="", created_at=self.clock()))

    def keys(self) -> list[ApiKey]:
        with reading(self.engine) as connection:
            rows = connection.execute(sa.select(schema.api_keys).order_by(
                schema.api_keys.c.created_at, schema.api_keys.c.key_id)).mappings().all()
        return [_key(row) for row in rows]

    def has_active_keys(self) -> bool:
        with reading(self.engine) as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(schema.api_keys)
                                      .where(schema.api_keys.c.revoked_at.is_(None))
                                      ).scalar_one() > 0

    def revoke_key(self, key_id: str) -> ApiKey:
        with writing(self.engine) as connection:
            row = connection.execute(sa.select(schema.api_keys).where(
                schema.api_keys.c.key_id == key_id)).mappings().first()
            if row is None:
                raise ValueError(f"unknown key {key_id!r}")
            if row["revoked_at"] is None:
                connection.execute(sa.update(schema.api_keys).where(
                    schema.api_keys.c.key_id == key_id).values(revoked_at=self.clock()))
        return next(key for key in self.keys() if key.key_id == key_id)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, else None. Asked on every request, so
        the statement is built once (building it took 0.34 ms, as long as running it)."""
        with reading(self.engine) as connection:
            row = connection.execute(_ACTIVE_KEY, {"secret_hash": self._hash(secret)}
                                     ).mappings().first()
        return None if row is None else _key(row)

    def _hash(self, secret: str) -> str:
        return hmac.new(self.pepper, secret.encode(), hashlib.sha256).hexdigest()

    # -- audit -----------------------------------------------------------------------

    def record(self, tenant_id: str, key_id: str | None, role: str, method: str, path: str,
               resource: str, resource_id: str, before: Any, after: Any) -> None:
        with writing(self.engine) as connection:
            connection.execute(sa.insert(schema.audit_events).values(
                tenant_id=tenant_id, key_id=key_id, role=role, at=self.clock(),
                method=method, path=path, resource=resource, resource_id=resource_id,
                before=None if before is None else json.dumps(before, sort_keys=True),
                after=json.dumps(after, sort_keys=True)))

    def audit_events(self, tenant_id: str | None = None, after_id: int = 0,
                     limit: int | None = None) -> list[AuditEvent]:
        """Oldest first, after ``after_id``; ``tenant_id`` None: every tenant's."""
        table = schema.audit_events
        query = sa.select(table).where(table.c.audit_id > after_id).order_by(table.c.audit_id)
        if tenant_id is not None:
            query = query.where(table.c.tenant_id == tenant_id)
        if limit is not None:
            query = query.limit(limit)
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [AuditEvent(**{**row, "before": None if row["before"] is None
                              else json.loads(row["before"]), "after": json.loads(row["after"])})
                for row in rows]

    # -- idempotency -----------------------------------------------------------------

    def stored_response(self, tenant_id: str, key: str) -> StoredResponse | None:
        table = schema.idempotent_responses
        with reading(self.engine) as connection:
            row = connection.execute(sa.select(table.c.fingerprint, table.c.status,
                                               table.c.body).where(
                table.c.tenant_id == tenant_id, table.c.idempotency_key == key)).first()
        return None if row is None else StoredResponse(row[0], row[1], bytes(row[2]))

    def store_response(self, tenant_id: str, key: str, response: StoredResponse) -> None:
        """Kept once: a concurrent request with the same key that finished first wins."""
        table = schema.idempotent_responses
        with writing(self.engine) as connection:
            exists = connection.execute(sa.select(table.c.status).where(
                table.c.tenant_id == tenant_id, table.c.idempotency_key == key)).first()
            if exists is None:
                connection.execute(sa.insert(table).values(
                    tenant_id=tenant_id, idempotency_key=key,
                    fingerprint=response.fingerprint, status=response.status,
                    body=response.body, created_at=self.clock()))


_ACTIVE_KEY = sa.select(schema.api_keys).where(
    schema.api_keys.c.secret_hash == sa.bindparam("secret_hash"),
    schema.api_keys.c.revoked_at.is_(None))


def _key(row: Any) -> ApiKey:
    return ApiKey(row["key_id"], row["tenant_id"], row["role"], row["description"],
                  row["created_at"], row["revoked_at"])


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(engine: sa.Engine) -> None:
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with reading(engine) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        if context.get_current_revision() == head:
            return
    with writing(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
