"""Customers' billing and shipping addresses and tax ids (Orb's shapes, as JSON text).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("billing_address", "shipping_address", "tax_id")


def upgrade() -> None:
    # batch mode: SQLite adds the columns in place; nullable, so no row is rewritten
    with op.batch_alter_table("customer_versions") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("customer_versions") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
