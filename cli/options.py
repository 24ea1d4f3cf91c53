"""The options every ``orb`` command shares, declared once so that each names a place
the same way (``--data-dir``, honouring ``ORB_DATA_DIR`` as Dagster does), a month the
same way (``--period``) and a listing's output the same way (``--format``). Imports only
click: ``orb --help`` loads this module and nothing heavy."""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR_VARIABLE = "ORB_DATA_DIR"


def default_actor() -> str:
    """Who a change made with the CLI is recorded as: the OS user, else ``cli``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid
        return "cli"


FORMATS = ("table", "json", "csv")


def data_dir_option(help: str | None = None) -> Callable[[F], F]:
    """``--data-dir``: the option, else ``ORB_DATA_DIR``, else ``data``; the same
    resolution as ``storage.settings.Settings.from_env``, so the CLI and Dagster act on
    the same lake."""
    return click.option("--data-dir", envvar=DATA_DIR_VARIABLE, default="data",
                        show_default=True, show_envvar=True, type=click.Path(path_type=Path),
                        help=help)


DATA_DIR = data_dir_option()


def month_option(_ctx: click.Context | None, _param: click.Parameter | None,
                 value: Any) -> Any:
    """YYYY-MM as the first day of the month (a tuple of them for multiple options)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(month_option(_ctx, _param, v) for v in value)
    try:
        return date.fromisoformat(f"{value}-01")
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM, got {value!r}") from exc


def period_option(required: bool = False, multiple: bool = False,
                  help: str = "Billing month, YYYY-MM.",
                  old_month: bool = False) -> Callable[[F], F]:
    """``--period``, the one name of a billing month in every command. With ``old_month``
    (``orb bill``, which called it ``--month``), ``--month`` still works, hidden and with a
    deprecation warning. The command gets ``period``."""
    shown = click.option("--period", "period", multiple=multiple, callback=month_option,
                         required=required and not old_month, help=help)
    if not old_month:
        return shown

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def merged(*args: Any, period: Any, month: Any, **kwargs: Any) -> Any:
            if period and month:
                raise click.UsageError("give --period only (--month is its old name)")
            if month:
                click.echo("Warning: --month is deprecated; use --period", err=True)
            if required and not (period or month):
                raise click.UsageError("Missing option '--period'.")
            return command(*args, period=period or month, **kwargs)

        # wraps() shares the command's click parameters; these two join them
        hidden = click.option("--month", "month", hidden=True, multiple=multiple,
                              callback=month_option)
        return shown(hidden(merged))  # type: ignore[return-value]

    return decorate


FORMAT = click.option("--format", "output_format", type=click.Choice(FORMATS),
                      default="table", show_default=True,
                      help="table for people; json or csv, every value in full, for scripts.")


def existing_data_dir(data_dir: Path) -> Path:
    """The data folder, refused with its name when it does not exist (a typo in
    --data-dir or ORB_DATA_DIR must not read as an empty lake)."""
    if not data_dir.is_dir():
        raise click.ClickException(
            f"no data folder at {data_dir}: give --data-dir or set {DATA_DIR_VARIABLE} to a "
            "folder that holds a lake")
    return data_dir


def iso_instant(_ctx: click.Context | None, _param: click.Parameter | None,
                value: str | None) -> datetime | None:
    """A click callback: an ISO 8601 instant with its UTC offset (none: None)."""
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected an ISO 8601 instant, got {value!r}") from exc
    if instant.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset, e.g. {value}Z")
    return instant
