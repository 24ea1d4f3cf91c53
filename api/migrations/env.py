"""Alembic's environment for the API registry: the connection ``api.registry`` passes in
(``config.attributes["connection"]``). Its version table is ``api_alembic_version``, so the
registry may share a database with the state store."""

from __future__ import annotations

from alembic import context

from api.schema import VERSION_TABLE, metadata

context.configure(connection=context.config.attributes["connection"],
                  target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
