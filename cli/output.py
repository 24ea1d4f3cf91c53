"""A listing's rows as a table for people, or as JSON or CSV for scripts. Nothing is ever
cut: a table folds a long cell instead of ellipsizing it and, piped (``| head``), is as
wide as its content; JSON and CSV carry amounts as exact decimal strings beside their
currency, not formatted money."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click
from rich.console import Console, ConsoleDimensions
from rich.table import Table

Record = Mapping[str, Any]
# Wide enough for any row: a piped table is as wide as its content, never wrapped at 80.
PIPED_WIDTH = 100_000


class _Console(Console):
    """Rich's console, but piped (not a terminal) never wrapping a line or folding a cell.
    Its size is asked at each print rather than fixed when the module is imported, which
    with lazy imports would be whenever the first command ran."""

    @property
    def size(self) -> ConsoleDimensions:
        if not self.is_terminal:
            return ConsoleDimensions(PIPED_WIDTH, 25)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# Every command prints through this one console.
console = _Console()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def emit(output_format: str, title: str, fields: Sequence[str], records: Sequence[Record],
         headers: Sequence[str], cells: Callable[[Record], Sequence[str]],
         right: Sequence[str] = ()) -> None:
    """``fields`` of each record for json and csv (one object or line per record);
    ``headers`` and ``cells`` (the record shown for people) for the table."""
    if output_format == "json":
        click.echo(json.dumps([{f: _plain(r[f]) for f in fields} for r in records], indent=2))
    elif output_format == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows([["" if r[f] is None else _plain(r[f]) for f in fields]
                          for r in records])
        click.echo(text.getvalue(), nl=False)
    else:
        table = Table(title=title)
        for header in headers:
            table.add_column(header, overflow="fold",
                             justify="right" if header in right else "left")
        for record in records:
            table.add_row(*cells(record))
        console.print(table)
