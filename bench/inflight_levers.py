"""Section 10 at one size with a memory lever, for P-8: ``plain``, ``cache`` (SQLite page cache
of 128 KiB per connection instead of 2 MB); run under ``MALLOC_ARENA_MAX=2`` for the arena lever.
Prints one JSON line; writes no results file (one run each, for comparison beside a plain run).

    .venv/bin/python bench/inflight_levers.py 10000 cache
    MALLOC_ARENA_MAX=2 .venv/bin/python bench/inflight_levers.py 10000 plain
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inflight

KEYS = ("n", "rss_before_kib", "peak_rss_kib", "vmhwm_kib", "posts", "any_429", "seconds_to_receipts")


def main(argv: list[str]) -> int:
    n, lever = int(argv[0]), argv[1]
    if lever == "cache":

        @event.listens_for(sa.engine.Engine, "connect")
        def _small_cache(dbapi_conn: Any, _record: Any) -> None:
            if type(dbapi_conn).__module__.startswith("sqlite3"):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA cache_size=-128")
                cur.close()

    row = inflight.one(n, "sqlite", 3600.0)
    print(lever, json.dumps({k: row[k] for k in KEYS}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
