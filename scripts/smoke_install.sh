#!/usr/bin/env bash
# The production install works on its own: a fresh venv gets `pip install '.[postgres]'` only
# (no test extras, so nothing pytest drags in hides a missing dependency), then a batch server
# from that venv runs a job on Redis + PostgreSQL to `ended`.
#
# It uses a PostgreSQL schema (batchjobs_smoke) and a Redis db (BATCHJOBS_SMOKE_REDIS, default
# db 14) of its own, runs outside the checkout with PYTHONPATH unset (the installed package,
# not the source tree, is what runs), and stops the server it started and removes what it made,
# whatever happens.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pg_base="${BATCHJOBS_TEST_PG:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
schema=batchjobs_smoke
redis_url="${BATCHJOBS_SMOKE_REDIS:-redis://127.0.0.1:6379/14}"
work="$(mktemp -d)"
server_pid=""
unset PYTHONPATH

py() { (cd "$work" && "$work/venv/bin/python" "$@"); }

reset_services() {   # $1 = create|drop: the schema; the Redis db is emptied either way
  py - "$1" "$pg_base" "$schema" "$redis_url" <<'PY'
import sys
import redis
from sqlalchemy import create_engine, text
action, url, schema, redis_url = sys.argv[1:]
engine = create_engine(url)
with engine.begin() as conn:
    conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    if action == "create":
        conn.execute(text(f"CREATE SCHEMA {schema}"))
engine.dispose()
redis.Redis.from_url(redis_url).flushdb()
PY
}

cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true     # the server's own process group
    for _ in $(seq 1 120); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
  if [ -x "$work/venv/bin/python" ]; then reset_services drop || true; fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- server log" >&2; tail -n 40 "$work/server.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

echo "smoke: fresh venv, pip install '.[postgres]'"
# From a copy of the checkout: an in-tree build would leave build/ behind, and reuse it.
mkdir "$work/src"
tar -C "$repo" --exclude=./.git --exclude=./build --exclude='*.egg-info' \
  --exclude=__pycache__ --exclude='./.*_cache' -cf - . | tar -C "$work/src" -xf -
python -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$work/src[postgres]"

reset_services create
export BATCHJOBS_DATABASE_URL="$pg_base?options=-csearch_path%3D$schema"
export BATCHJOBS_BROKER_URL="$redis_url"
export BATCHJOBS_HOME="$work"
# The schema first: a server and a submit that both find the schema missing race to make it.
(cd "$work" && "$work/venv/bin/batchjobs" db upgrade >/dev/null)

echo "smoke: batch server SmokeInstall1 on Redis"
(cd "$work" && exec setsid "$work/venv/bin/batchjobs" worker --server SmokeInstall1 \
  --groups default --threads 1 --loglevel WARNING >"$work/server.log" 2>&1) &
server_pid=$!

cat >"$work/job.yaml" <<'YAML'
description: smoke install
tasks:
  - {name: A, process: batchjobs.examples.sleep, kwargs: {seconds: 0.1}}
  - {name: B, process: batchjobs.examples.noop, depends_on: [{task: A}]}
YAML
job_id="$(cd "$work" && "$work/venv/bin/batchjobs" submit job.yaml)"
final="$(cd "$work" && "$work/venv/bin/batchjobs" wait "$job_id" --timeout 300 --quiet)" || {
  echo "smoke: job $job_id did not end: ${final:-no status}" >&2
  (cd "$work" && "$work/venv/bin/batchjobs" status "$job_id") >&2 || true
  exit 1
}
kill -0 "$server_pid" 2>/dev/null || { echo "smoke: the server died" >&2; exit 1; }
echo "smoke: job $job_id $final"
