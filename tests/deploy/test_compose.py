"""deploy/compose: the docker-compose.yml and the Dockerfile it builds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
SERVICES = {"postgres", "redis", "migrate", "aos1", "aos2", "coordinator", "flower", "web"}


def compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def test_compose_runs_an_installation_with_urls_only_from_secret_files():
    spec = compose()
    services = spec["services"]
    assert set(services) == SERVICES
    ours = {name: s for name, s in services.items() if s.get("image") == "batchjobs:local"}
    assert set(ours) == SERVICES - {"postgres", "redis"}
    for name, service in ours.items():
        env = service["environment"]
        assert "BATCHJOBS_DATABASE_URL" not in env and "BATCHJOBS_BROKER_URL" not in env, name
        assert env["BATCHJOBS_DATABASE_URL_FILE"] == "/run/secrets/database_url", name
        assert {"database_url", "broker_url"} <= set(service["secrets"]), name
    assert set(spec["secrets"]) >= {"database_url", "broker_url", "flower_auth"}
    # No password written into the file itself.
    text = (COMPOSE / "docker-compose.yml").read_text()
    assert not re.search(r"(redis|postgresql\+psycopg)://[^\s'\"]*:[^@\s'\"]+@(?!postgres:|redis:)",
                         text)


def test_two_batch_servers_in_different_groups_stop_warm_and_report_health():
    services = compose()["services"]
    names, groups = [], []
    for key in ("aos1", "aos2"):
        command = services[key]["command"]
        name = command[command.index("--server") + 1]
        names.append(name)
        groups.append(command[command.index("--groups") + 1])
        assert services[key]["stop_grace_period"] == "1h"
        assert services[key]["healthcheck"]["test"] == ["CMD", "batchjobs", "server", "health",
                                                        name]
        assert "--metrics-port" in command
    assert len(set(names)) == 2 and len(set(groups)) == 2
    assert "FLOWER_BASIC_AUTH" in " ".join(services["flower"]["entrypoint"])
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_the_image_is_slim_non_root_and_installs_this_checkout():
    lines = [line.strip() for line in (COMPOSE / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert re.fullmatch(r"FROM python:3\.\d+-slim", lines[0])
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["batchjobs"]
    assert any(re.search(r"pip install '/src\[postgres\]'", line) for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert lines[-2:] == ['ENTRYPOINT ["batchjobs"]', 'CMD ["--help"]']


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose`` (Debian's package), if either
    is here: both check a file against the Compose schema without a Docker engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=60).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file_and_refuses_a_misspelt_key(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose is installed here: "
                    "`docker compose config` not run")
    work = tmp_path / "compose"
    shutil.copytree(COMPOSE, work)
    (work / "secrets").mkdir()
    for secret in compose()["secrets"]:
        (work / "secrets" / secret).write_text("x")

    def config() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, "-f", str(work / "docker-compose.yml"), "config",
                               "--quiet"], capture_output=True, text=True, timeout=120,
                              cwd=work)
    accepted = config()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    path = work / "docker-compose.yml"
    path.write_text(path.read_text().replace("stop_grace_period:", "stop_grace_perod:"))
    refused = config()
    assert refused.returncode != 0 and "stop_grace_perod" in refused.stdout + refused.stderr
