"""Smoke test of scripts/bench.py: tiny sizes, both backends, every figure reported as a number.

No timing is asserted (the machine may be shared). The benchmark runs in a subprocess on its
own backends, Redis db 13 and the PostgreSQL schema ``batchjobs_bench``; every ``BATCHJOBS_*``
variable is removed from its environment, so it never touches the test backends (Redis db 15,
schema ``batchjobs_test``) that the session's ``backend`` fixture may have exported.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
BENCH_REDIS = os.environ.get("BATCHJOBS_BENCH_REDIS", "redis://127.0.0.1:6379/13")
BENCH_PG = os.environ.get("BATCHJOBS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

#: Figures measured on both sides (batchjobs and raw Celery), on every backend.
COMPARED = {"hop_median", "hop_p99", "hop_median_process", "throughput",
            "throughput_result_backend", "publish_per_task", "worker_cpu_per_task",
            "fanout_20", "fanout_40", "wide_throughput"}
#: ... and beside raw Celery with its own defaults (early ack, prefetch 4, no events).
WITH_DEFAULTS = {"hop_median", "hop_p99", "throughput", "fanout_20", "fanout_40"}
#: Figures of batchjobs alone, on every backend (ratio: many jobs / one, JOB 1 / 7 tasks).
ALONE = {"run_at_lag_median", "run_at_lag_p95", "run_at_wake_p95", "fanout_20_from_submit",
         "fanout_40_from_submit", "many_jobs", "job1_shape"}
#: Figures of batchjobs alone (scale, submit, memory, rows), on redis-pg only.
SCALE = {"overhead_small_independent", "overhead_large_independent", "overhead_small_layered",
         "overhead_large_layered", "submit_large_api", "submit_large_file",
         "submit_large_started", "db_rows_per_task_independent", "db_rows_per_task_layered"}
MEMORY = {"rss_worker_main", "rss_pool_process", "rss_coordinator"}
EXPECTED = {"redis-pg": COMPARED | ALONE | SCALE | MEMORY | {"wide_lock_waits"},
            "embedded": COMPARED | ALONE}
KEYS = {"figure", "unit", "batchjobs", "celery", "ratio", "target", "met"}


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_reports_every_figure_with_numbers_on_both_backends():
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHJOBS_")}
    env.update(BATCHJOBS_BENCH_REDIS=BENCH_REDIS, BATCHJOBS_BENCH_PG=BENCH_PG)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--json", "--backend", "both",
         "--chain", "5", "--tasks", "50", "--small", "20", "--large", "100", "--layers", "5",
         "--fanout", "20,40", "--many-jobs", "3", "--many-tasks", "4", "--job1-jobs", "2",
         "--runat-jobs", "3", "--runat-runs", "2", "--wide-servers", "2", "--wide-threads", "2",
         "--wide-tasks", "40", "--timeout", "60", "--stall", "30"],
        check=False, capture_output=True, text=True, timeout=560, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    seen: dict[str, set[str]] = {"redis-pg": set(), "embedded": set()}
    for fig in lines:
        where = f"{fig.get('backend')}/{fig.get('figure')}: {fig}"
        assert fig.keys() >= KEYS, where
        seen[fig["backend"]].add(fig["figure"])
        assert number(fig["batchjobs"]), where
        if fig["figure"] in COMPARED:
            assert number(fig["celery"]) and number(fig["ratio"]), where
        if fig["figure"] in WITH_DEFAULTS:
            assert number(fig["celery_defaults"]) and number(fig["ratio_defaults"]), where
        if fig["figure"] in {"many_jobs", "job1_shape"}:
            assert number(fig["ratio"]), where
        if fig["figure"].startswith("overhead_large_"):
            assert number(fig["ratio"]), where
        if fig["figure"] in MEMORY - {"rss_coordinator"}:
            assert number(fig["celery"]) and fig["batchjobs"] > 0, where
        if fig["target"] is not None:
            assert isinstance(fig["met"], bool), where
    assert seen == EXPECTED, result.stderr[-3000:]
