"""What batchjobs' Celery app enforces, whatever a user's ``celeryconfig`` says: seen by a
fresh interpreter in a folder with a hostile ``celeryconfig.py``, as ``celery -A
batchjobs.app`` would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HOSTILE = '''
task_acks_late = False
worker_prefetch_multiplier = 8
task_reject_on_worker_lost = False
task_serializer = "pickle"
accept_content = ["pickle", "json"]
worker_send_task_events = False
broker_pool_limit = 3
'''

PROBE = '''
import json
from batchjobs.app import app
c = app.conf
print(json.dumps({k: c[k] for k in ("task_acks_late", "worker_prefetch_multiplier",
    "task_reject_on_worker_lost", "task_serializer", "accept_content",
    "worker_send_task_events", "task_send_sent_event", "broker_pool_limit")}))
'''


def probe(folder: Path, **env: str) -> dict[str, object]:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)]),
               "BATCHJOBS_HOME": str(folder), **env}
    environ.pop("BATCHJOBS_BROKER_URL", None)
    environ.pop("BATCHJOBS_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, env=environ,
                         capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_users_celeryconfig_cannot_turn_off_late_ack_prefetch_1_json_or_events(tmp_path):
    (tmp_path / "celeryconfig.py").write_text(HOSTILE)
    seen = probe(tmp_path)
    assert seen == {"task_acks_late": True, "worker_prefetch_multiplier": 1,
                    "task_reject_on_worker_lost": True, "task_serializer": "json",
                    "accept_content": ["json"], "worker_send_task_events": True,
                    "task_send_sent_event": True, "broker_pool_limit": 3}


def test_the_module_named_by_batchjobs_celery_config_is_read_instead(tmp_path):
    (tmp_path / "ops_celery.py").write_text("broker_pool_limit = 7\n")
    assert probe(tmp_path, BATCHJOBS_CELERY_CONFIG="ops_celery")["broker_pool_limit"] == 7


def test_without_any_celeryconfig_the_defaults_and_the_enforced_settings_hold(tmp_path):
    seen = probe(tmp_path, BATCHJOBS_CELERY_CONFIG="no_such_module_here")
    assert (seen["task_acks_late"], seen["worker_prefetch_multiplier"]) == (True, 1)


def test_the_package_does_not_install_a_top_level_celeryconfig():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "py-modules" not in project.get("tool", {}).get("setuptools", {})
