"""Users' roles, passwords and API tokens from the CLI, on a fresh embedded default: the
record never shows a secret, a token is printed once and only its hash is stored, bad input
exits 2 naming the culprit."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from batchjobs import auth, store
from batchjobs.cli import cli
from batchjobs.models import ApiToken, Secret, User
from batchjobs.settings import Settings
from tests.test_cli_validation import home, run  # noqa: F401 - fixture

#: Every test here on its own embedded default (``home`` from the validation tests).
pytestmark = pytest.mark.usefixtures("home")


def record(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_new_user_is_a_user_unless_a_role_is_given():
    assert record("user", "add", "ann")["role"] == "user"
    assert record("user", "add", "olga", "--role", "operator", "--email", "o@example.test") \
        == {"name": "olga", "email": "o@example.test", "role": "operator",
            "password_set": False, "tokens": 0, "disabled": False, "disabled_at": None}


def test_user_set_changes_the_role_and_keeps_the_email():
    record("user", "add", "ann", "--email", "ann@example.test")
    row = record("user", "set", "ann", "--role", "admin")
    assert (row["role"], row["email"]) == ("admin", "ann@example.test")


@pytest.mark.parametrize(("args", "words"), [
    (["user", "add", "ann", "--role", "boss"], ["boss"]),
    (["user", "set", "nobody", "--role", "admin"], ["nobody"]),
    (["user", "token", "nobody"], ["nobody"]),
    (["user", "revoke", "nobody"], ["nobody"]),
])
def test_bad_user_commands_exit_2_naming_the_culprit(args, words):
    result = run(*args)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.output


def test_password_is_read_from_stdin_stored_as_argon2_and_never_shown():
    record("user", "add", "ann")
    result = CliRunner().invoke(cli, ["user", "password", "ann"], input="correct horse\n")
    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output
    with store.read_session() as session:
        hashed = session.execute(select(User.password_hash).where(User.name == "ann")).scalar()
    assert hashed is not None and hashed.startswith("$argon2id$")
    assert auth.authenticate("ann", "correct horse") == auth.Principal("ann", auth.Role.USER)
    assert auth.authenticate("ann", "wrong horse!") is None
    assert auth.authenticate("nobody", "correct horse") is None
    row = record("user", "add", "ann")
    assert row["password_set"] is True and "argon2" not in json.dumps(row)


def test_a_short_password_is_refused_and_nothing_is_stored():
    record("user", "add", "ann")
    result = CliRunner().invoke(cli, ["user", "password", "ann"], input="short\n")
    assert result.exit_code == 2 and "password" in result.stderr
    assert "short" not in result.output
    assert record("user", "add", "ann")["password_set"] is False


def test_a_token_is_printed_once_stored_as_its_hash_and_revoked():
    record("user", "add", "ann", "--role", "operator")
    result = run("user", "token", "ann")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    with store.read_session() as session:
        stored = list(session.execute(select(ApiToken.token_hash)).scalars())
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert auth.token_principal(token) == auth.Principal("ann", auth.Role.OPERATOR)
    assert record("user", "add", "ann")["tokens"] == 1
    revoked = run("user", "revoke", "ann")
    assert revoked.exit_code == 0 and "1 token" in revoked.stdout
    assert auth.token_principal(token) is None


def test_the_signing_key_is_made_once_and_kept_in_the_database():
    first = auth.signing_key()
    assert auth.signing_key() == first and len(first) >= 32
    with store.read_session() as session:
        assert session.execute(select(Secret.value)).scalar() == first


def test_the_signing_key_comes_from_the_environment_when_set():
    settings = Settings.from_env({"BATCHJOBS_SECRET_KEY": "from-env-key-0123456789"})
    assert auth.signing_key(settings) == "from-env-key-0123456789"
