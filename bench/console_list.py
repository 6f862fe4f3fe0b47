"""Bench 11: server time of the console's pages as the request table grows (1,000 / 10,000 /
100,000 requests).

One process opens a submitter runtime on a fresh database (SQLite or PostgreSQL) and builds the
real service app (``service.create_app``, console included); pages are requested in process with
Starlette's ``TestClient`` (no network, no uvicorn: the figure is the app's own time, database
included). Rows are written in bulk with SQL (then ``ANALYZE`` on PostgreSQL, as autovacuum
would), as the table would hold them: requests received one second apart
(a third CCPA, half deletions, every tenth one unfinished past its deadline, half of them mapped
to an OpenDSR request) and one ``received`` audit entry each, holding the identifier's digest,
and the digest's row in the indexed ``dsr_identifier_digests`` (as ``dsr/intake.py`` writes it).

Per level, each page is requested ``--repeat`` times after one warm-up; the median and the worst
are reported, with the SQL statements the page ran (counted with a SQLAlchemy event on the
runtime's engine: the session check, the page's query). Pages: the first page of the list, the
page after 90% of the rows (keyset), the overdue filter, a filter by state, the identifier
search (a POST) and one request's page.

    .venv/bin/python bench/console_list.py [--levels 1000,10000,100000] [--dbs sqlite,postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from amplitude_dsr.config import ProjectConfig, Settings
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.service import ResultsLinks, Service, ServiceConfig, auth, create_app, load_or_create
from amplitude_dsr.service.console import views
from amplitude_dsr.store.audit import dsr_audit
from amplitude_dsr.store.service_tables import service_requests
from amplitude_dsr.store.tables import identifier_digests, requests

CHUNK = 5000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(f"email:person{n}@example.com".encode()).hexdigest()


def fill(engine: sa.Engine, start: int, stop: int, now: datetime) -> None:
    """Requests ``start``..``stop - 1`` (the newest is number ``stop - 1``), written in chunks."""
    for lo in range(start, stop, CHUNK):
        hi = min(stop, lo + CHUNK)
        rows, mapped, entries, digests = [], [], [], []
        for n in range(lo, hi):
            created = now - timedelta(seconds=200_000 - n)  # one second apart, the newest last
            regulation = "ccpa" if n % 3 == 0 else "gdpr"
            late = n % 10 == 0
            status = "collecting" if late else ("verified" if n % 2 else "completed")
            kind = "access" if late or n % 2 == 0 else "deletion"
            days = 45 if regulation == "ccpa" else 30
            deadline = created + timedelta(days=days) - (timedelta(days=60) if late else timedelta())
            rid = f"dsr_bench_{n:07d}"
            rows.append({
                "id": rid, "kind": kind, "status": status, "regulation": regulation, "created_at": created,
                "updated_at": created, "deadline": deadline, "identifiers": [], "options": {},
            })  # fmt: skip
            if n % 2:
                mapped.append({
                    "subject_request_id": f"00000000-0000-4000-8000-{n:012d}", "channel": "opendsr", "request_id": rid,
                    "controller_id": "bench", "request_type": "erasure", "body_sha256": "0" * 64, "callback_urls": [],
                    "received_time": created, "api_version": "2.0", "notified_state": status, "notified_final": True,
                })  # fmt: skip
            detail = f'{{"identifiers":["{digest(n)}"],"kind":"{kind}","regulation":"{regulation}"}}'
            digests.append({"digest": digest(n), "request_id": rid})
            entries.append({
                "request_id": rid, "at": created.isoformat(), "kind": "received", "detail": detail,
                "prev_hash": "0" * 64, "hash": "0" * 64,
            })  # fmt: skip
        with engine.begin() as conn:
            conn.execute(requests.insert(), rows)
            if mapped:
                conn.execute(service_requests.insert(), mapped)
            conn.execute(dsr_audit.insert(), entries)
            conn.execute(identifier_digests.insert(), digests)
    if engine.dialect.name == "postgresql":  # what autovacuum does after a bulk load, at once
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")


def measure(client: TestClient, engine: sa.Engine, method: str, url: str, repeat: int, **kw: Any) -> dict[str, Any]:
    """Median and worst milliseconds of ``repeat`` requests, and the SQL statements of one."""
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    client.request(method, url, **kw)  # warm-up
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.request(method, url, **kw)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert response.status_code in (200, 303), (url, response.status_code)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.request(method, url, **kw)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times), "max_ms": max(times), "statements": statements[0]}


def run(db: str, levels: list[int], repeat: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with common.temp_dir("console") as work, common.fresh_database(db, work) as url:
        project = ProjectConfig(name="web", api_key="k" * 32, secret_key="s" * 32, base_url="http://127.0.0.1:9")
        settings = Settings(projects=(project,), database_url=url)
        rt = open_runtime(settings, role="submitter", data_dir=work / "data")
        try:
            keys = work / "data" / "service"
            service = Service(
                rt, ServiceConfig(public_url="http://127.0.0.1"), load_or_create(keys, "127.0.0.1"),
                ResultsLinks.load_or_create(keys),
            )  # fmt: skip
            client = TestClient(create_app(service), follow_redirects=False)
            _, token = auth.create(rt.engine, "bench", ["admin"])
            form = client.get("/ui/login")
            client.post("/ui/login", data={"token": token, "csrf": CSRF.findall(form.text)[0]})
            now, have = datetime.now(UTC), 0
            for level in levels:
                t0 = time.perf_counter()
                fill(rt.engine, have, level, now)
                have = level
                print(f"{db}: {level} requests written in {time.perf_counter() - t0:.1f} s", flush=True)
                page = client.get("/ui/requests")
                csrf = CSRF.findall(page.text)[0]
                deep = f"dsr_bench_{level // 10:07d}"
                created = (now - timedelta(seconds=200_000 - level // 10)).isoformat()
                after = views.encode_key((datetime.fromisoformat(created), deep))
                pages = {
                    "list, first page": ("GET", "/ui/requests", {}),
                    "list, page after 90%": ("GET", f"/ui/requests?after={after}", {}),
                    "list, overdue only": ("GET", "/ui/requests?overdue=1", {}),
                    "list, state=verified": ("GET", "/ui/requests?state=verified", {}),
                    "search by identifier": (
                        "POST", "/ui/requests/search", {"data": {"csrf": csrf, "q": f"person{level // 2}@example.com"}}
                    ),
                    "a request's page": ("GET", f"/ui/requests/{deep}", {}),
                }  # fmt: skip
                for name, (method, path, kw) in pages.items():
                    figures = measure(client, rt.engine, method, path, repeat, **kw)
                    out.append({"db": db, "requests": level, "page": name, **figures})
                    print(f"  {name}: {figures}", flush=True)
            client.close()
        finally:
            rt.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1000,10000,100000")
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    rows = []
    for db in args.dbs.split(","):
        rows += run(db, levels, args.repeat)
    common.write_result("console_list", {"rows": rows, "repeat": args.repeat, "shared_machine": True})
    common.print_table(
        ["db", "requests", "page", "p50 ms", "max ms", "SQL statements"],
        [[r["db"], r["requests"], r["page"], r["p50_ms"], r["max_ms"], r["statements"]] for r in rows],
    )


if __name__ == "__main__":
    main()
