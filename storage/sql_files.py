"""Read a stage's SQL from the ``.sql`` files shipped in its ``sql/`` folder.

The files take values only through DuckDB parameters (``$name``) and registered
tables, never through string formatting, so user input never becomes SQL text.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources


def sql_loader(package: str) -> Callable[[str], str]:
    """``load_sql(name)``: the text of ``<package>/<name>.sql``, read once."""

    @cache
    def load_sql(name: str) -> str:
        return resources.files(package).joinpath(f"{name}.sql").read_text("utf-8")

    return load_sql
