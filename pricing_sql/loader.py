"""Read the pipeline's SQL from the ``.sql`` files shipped in ``pricing_sql/sql``.

The files take values only through DuckDB parameters (``$name``) and registered
tables, never through string formatting, so user input never becomes SQL text.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_sql(name: str) -> str:
    """The text of ``pricing_sql/sql/<name>.sql``."""
    return resources.files("pricing_sql").joinpath("sql", f"{name}.sql").read_text("utf-8")
