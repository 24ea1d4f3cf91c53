"""The API registry's tables (docs/api.md): tenants, API keys, the audit trail and the
stored responses of idempotent requests. ``api/migrations/`` creates exactly these.

Keys and audit rows are only ever inserted, except a key's ``revoked_at``, set once."""

from __future__ import annotations

import sqlalchemy as sa

from state.schema import Instant

metadata = sa.MetaData()
# Alembic's, apart from the state store's: the two may share a database.
VERSION_TABLE = "api_alembic_version"
ID = sa.String(128)

tenants = sa.Table(
    "api_tenants", metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("data_dir", sa.Text, nullable=False),
    sa.Column("created_at", Instant, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("api_tenants.tenant_id"), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    # HMAC-SHA256 of the secret under the server's pepper, hex: the secret is never kept
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("revoked_at", Instant),
)

audit_events = sa.Table(
    "api_audit_events", metadata,
    sa.Column("audit_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", ID, nullable=False, index=True),
    sa.Column("key_id", ID),  # null: a request without a key (ORB_API_REQUIRE_AUTH off)
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("at", Instant, nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("resource", sa.String(64), nullable=False),
    sa.Column("resource_id", ID, nullable=False),
    sa.Column("before", sa.Text),  # JSON, null for a creation
    sa.Column("after", sa.Text, nullable=False),  # JSON
)

idempotent_responses = sa.Table(
    "api_idempotent_responses", metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("idempotency_key", sa.String(256), primary_key=True),
    # sha256 of method, path and body: the same key with another request is a conflict
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Instant, nullable=False),
)
