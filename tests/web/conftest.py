"""Web fixtures: users of each role with passwords and tokens, an in-process client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from batchjobs import auth, users
from batchjobs.web import create_app

PASSWORD = "s3cret-password"


@dataclass
class People:
    """A token per user: ``admin`` (admin), ``olga`` (operator), ``alice`` and ``bob`` (user)."""

    tokens: dict[str, str]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def make_people() -> People:
    tokens = {}
    for name, role in (("admin", "admin"), ("olga", "operator"), ("alice", "user"),
                       ("bob", "user")):
        users.add_user(name, role=role)
        auth.set_password(name, PASSWORD)
        tokens[name] = auth.new_token(name)
    return People(tokens)


@pytest.fixture
def client(home) -> Iterator[TestClient]:
    with TestClient(create_app(), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def people(home) -> People:
    return make_people()


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log ``client`` in through the form; return the session's CSRF token."""
    form = client.get("/login")
    token = form.text.split('name="login_token" value="')[1].split('"')[0]
    answer = client.post("/login", data={"username": name, "password": password,
                                         "login_token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/jobs")
    return page.text.split('name="csrf-token" content="')[1].split('"')[0]
