"""Alembic's environment for the state store: the connection ``state.database`` passes
in (``config.attributes["connection"]``), or, from the ``alembic`` command, the URL in
``sqlalchemy.url``, else ``ORB_STATE_URL``, else ``<ORB_DATA_DIR>/state.db``."""

from __future__ import annotations

from alembic import context

from state.schema import metadata

config = context.config


def _url() -> str:
    from storage.settings import Settings  # only the alembic command needs it

    return config.get_main_option("sqlalchemy.url") or Settings.from_env().state_store_url


def run() -> None:
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    from state.database import create_engine, writing

    engine = create_engine(_url())
    try:
        with writing(engine) as connection:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
