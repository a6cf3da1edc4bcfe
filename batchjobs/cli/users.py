"""``batchjobs user``: the users jobs run as, their alert email, role, password and tokens."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import auth, users
from ..errors import UserNotFound
from .common import EXIT_INVALID, echo_json, echo_rows, json_option, reports_errors

F = TypeVar("F", bound=Callable[..., Any])

_role_option = click.option("--role", type=click.Choice([r.value for r in auth.Role]),
                            default=None, help="admin, operator or user (a new user: user).")


def _unknown_user_is_bad_input(fn: F) -> F:
    """An unknown user name is bad input (exit 2), like an unknown job id."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserNotFound as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_INVALID)

    return wrapper  # type: ignore[return-value]


@click.group()
def user() -> None:
    """Users: who jobs run as, their alert email, their role in the web console.

    \b
    Examples:
      batchjobs user add alice --email alice@example.com --role operator
      printf '%s' "$PASSWORD" | batchjobs user password alice
      batchjobs user token alice      # prints a new API token once
      batchjobs user disable alice    # holds alice's waiting and recurring jobs
    """


@user.command(name="add")
@click.argument("name")
@click.option("--email", default=None, help="Where this user's alerts are sent.")
@_role_option
@json_option
@reports_errors
def add(name: str, email: str | None, role: str | None, as_json: bool) -> None:
    """Add user NAME (or change their email or role)."""
    _print(users.add_user(name, email=email, role=role), as_json)


@user.command(name="set")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in auth.Role]), required=True,
              help="admin, operator or user.")
@json_option
@reports_errors
@_unknown_user_is_bad_input
def set_user(name: str, role: str, as_json: bool) -> None:
    """Give user NAME another role."""
    _print(users.set_role(name, role), as_json)


@user.command(name="password")
@click.argument("name")
@reports_errors
@_unknown_user_is_bad_input
def password(name: str) -> None:
    """Set NAME's web console password, read from standard input (prompted on a terminal)."""
    stdin = click.get_text_stream("stdin")
    if stdin.isatty():
        secret = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        secret = stdin.read().removesuffix("\n").removesuffix("\r")
    auth.set_password(name, secret)
    click.echo(f"password of {name} set")


@user.command(name="token")
@click.argument("name")
@reports_errors
@_unknown_user_is_bad_input
def token(name: str) -> None:
    """Print a new API token for NAME (shown this once; only its hash is kept)."""
    click.echo(auth.new_token(name))


@user.command(name="revoke")
@click.argument("name")
@reports_errors
@_unknown_user_is_bad_input
def revoke(name: str) -> None:
    """Revoke every API token of NAME."""
    count = auth.revoke_tokens(name)
    click.echo(f"revoked {count} token(s) of {name}")


@user.command(name="disable")
@click.argument("name")
@json_option
@reports_errors
@_unknown_user_is_bad_input
def disable(name: str, as_json: bool) -> None:
    """Disable NAME: their waiting and recurring jobs are held ("owner NAME disabled").

    Tasks executing now finish, and so does the run they belong to (a recurring job is
    then held instead of waiting). Enabling NAME again releases nothing: release each
    job (batchjobs release ID) or reassign it (batchjobs job reassign)."""
    from .. import owners

    done = owners.disable_user(name)
    if as_json:
        echo_json(done)
        return
    click.echo(f"user {name} disabled: {len(done['held'])} waiting job(s) held"
               + (f" ({_ids(done['held'])})" if done["held"] else "")
               + (f"; {len(done['executing'])} executing job(s) finish their run "
                  f"({_ids(done['executing'])})" if done["executing"] else ""))


@user.command(name="enable")
@click.argument("name")
@json_option
@reports_errors
@_unknown_user_is_bad_input
def enable(name: str, as_json: bool) -> None:
    """Enable NAME again; their held jobs stay held until released."""
    from .. import owners

    done = owners.enable_user(name)
    if as_json:
        echo_json(done)
        return
    click.echo(f"user {name} enabled" + (
        f"; still held (release them): {_ids(done['held'])}" if done["held"] else ""))


@user.command(name="remove")
@click.argument("name")
@reports_errors
@_unknown_user_is_bad_input
def remove(name: str) -> None:
    """Remove NAME and their tokens; refused (exit 2) while NAME owns any job."""
    from .. import owners

    owners.remove_user(name)
    click.echo(f"user {name} removed")


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)


@user.command(name="list")
@json_option
@reports_errors
def list_users(as_json: bool) -> None:
    """List users with their role."""
    echo_rows(users.list_users(), as_json,
              lambda r: f"{r['name']:<20} {r['role']:<9} {r['email'] or '-'}"
              + ("  (disabled)" if r["disabled"] else ""))


def _print(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(row)
        return
    click.echo(f"user {row['name']} <{row['email'] or 'no email'}> {row['role']}"
               + (" (disabled)" if row["disabled"] else ""))
