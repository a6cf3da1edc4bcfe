"""What the CLI modules share: exit codes, JSON output, error reporting."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from ..errors import BatchJobsError, DatabaseUnavailable
from ..settings import get_settings

#: Exit codes of every command.
EXIT_OK = 0
EXIT_FAILED = 1       # the job ended error or canceled; an operation failed
EXIT_INVALID = 2      # bad input: invalid definition, unknown job, bad option
EXIT_TIMEOUT = 124    # ``wait`` gave up

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str],
              *, header: str | None = None) -> None:
    """What every ``list`` command prints: the rows as JSON, or one line each (after
    ``header``)."""
    if as_json:
        echo_json(rows)
        return
    if header is not None:
        click.echo(header)
    for row in rows:
        click.echo(line(row))


def reports_errors(fn: F) -> F:
    """Turn a BatchJobsError into one clear line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BatchJobsError as exc:   # each kind of error says its exit code
            _refuse(exc)
        except Exception as exc:
            refused = _database_refused(exc)
            if refused is None:
                raise
            _refuse(refused)

    return wrapper  # type: ignore[return-value]


def _refuse(exc: BatchJobsError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _database_refused(exc: Exception) -> DatabaseUnavailable | None:
    """A database's refusal (SQLAlchemy's error of it, or the driver's own on a plain
    read) as one line; None for any other error.

    SQLAlchemy is looked up, not imported: a command that never loaded it (``status``
    reads through the driver alone) cannot have raised its errors."""
    from ..reads import driver_errors, first_line

    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.OperationalError):
        exc = exc.orig or exc
    elif not isinstance(exc, driver_errors()):
        return None
    return DatabaseUnavailable(get_settings().safe_database_url(), first_line(exc))
