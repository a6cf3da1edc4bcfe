"""What live pages cost the database: N job pages open in headless Chromium for S seconds.

Starts the console in this process on BATCHJOBS_DATABASE_URL (PostgreSQL), submits JOB 1
on hold (7 tasks, 7 conditions: it stays as it is, the worst case for a page that polls
without anything changing), opens N pages on it and counts the SQL statements the
console runs and PostgreSQL's committed transactions meanwhile.

    BATCHJOBS_DATABASE_URL=postgresql+psycopg://... python scripts/web_poll_cost.py 20 30
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import event, text

from batchjobs import api, auth, store, users
from batchjobs.examples import job1
from batchjobs.web import create_app


def main(pages: int, seconds: float) -> None:
    users.add_user("watcher", role="operator")
    auth.set_password("watcher", "watcher-password")
    job_id = api.submit(job1(), user="watcher", hold=True)
    engine = store.get_engine()
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        context = browser.new_context()
        login = context.new_page()
        login.goto(f"{base}/login")
        login.fill("input[name=username]", "watcher")
        login.fill("input[name=password]", "watcher-password")
        login.click("button[type=submit]")
        login.wait_for_url(f"{base}/jobs")
        opened = [context.new_page() for _ in range(pages)]
        for page in opened:
            page.goto(f"{base}/jobs/{job_id}")
        with engine.connect() as conn:
            before = conn.execute(text("SELECT xact_commit + xact_rollback FROM "
                                       "pg_stat_database WHERE datname = current_database()"
                                       )).scalar_one()
        counted_from = statements
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        counted = statements - counted_from
        with engine.connect() as conn:
            after = conn.execute(text("SELECT xact_commit + xact_rollback FROM "
                                      "pg_stat_database WHERE datname = current_database()"
                                      )).scalar_one()
        browser.close()
    server.should_exit = True
    polls = pages * elapsed  # one poll per page per second
    print(f"{pages} job pages for {elapsed:.0f} s: {counted / elapsed:.0f} statements/s "
          f"({counted / polls:.1f} per poll), {(after - before) / elapsed:.0f} "
          "transactions/s on the whole database")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20,
         float(sys.argv[2]) if len(sys.argv) > 2 else 30)
