"""Alembic migrations of the state store (``state/schema.py``), run at open by
``state.database.upgrade`` and by ``alembic upgrade head`` (``alembic.ini``)."""
