"""The budget history's section of ``bench/RESULTS.md`` (``bench/budget_history.py``);
``report.py`` places it."""

from __future__ import annotations

from typing import Any

TITLE = "## 14. The cost of recording the budget's history"


def section(data: dict[str, Any] | None) -> str:
    if not data:
        return f"{TITLE}\n\nNot run yet: `.venv/bin/python bench/budget_history.py`.\n"
    lines = [
        "| db | mode | calls per round | rounds | µs per call, recorded | µs per call, not recorded | added µs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['db']} | {r['mode']} | {r['calls_per_round']} | {r['rounds']} | {r['with_history_us']:.0f} "
            f"| {r['without_us']:.0f} | {r['added_us']:.0f} |"
        )
    return f"""{TITLE}

**How measured.** `bench/budget_history.py`: one process acquires and releases the user pool of a
fresh database (SQLite, then PostgreSQL) 2,000 times per round, with limits scaled so far up that
no call waits, so the figure is the budget's own database work per call (its transactions and
commits). Rounds alternate on the same database between counting calls in the history and counting
nothing; the medians of the rounds are shown. `buffered` is what the budget does (calls counted in
memory, added every 5 s inside a call's transaction; a 429 written at once); `each` is the first
design, one `INSERT ... ON CONFLICT DO UPDATE` per call, kept in the bench to show why it was
dropped: about 0.7 to 1.2 ms more per call on SQLite (three runs), less on PostgreSQL. Buffered, the
difference is within the noise. Measured on the shared two-core machine (other sessions' tests and
benches ran meanwhile): differences under about 0.2 ms are noise.

Rerun: `.venv/bin/python bench/budget_history.py [--calls 2000] [--rounds 5] [--dbs sqlite,postgres]`.

{chr(10).join(lines)}
"""
