"""What the CLI modules share: exit codes, JSON output, error reporting."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError

from ..errors import BatchJobsError
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
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            click.echo(f"error: database {get_settings().safe_database_url()} refused: {reason}",
                       err=True)
            sys.exit(EXIT_FAILED)
        except BatchJobsError as exc:   # each kind of error says its exit code
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]
