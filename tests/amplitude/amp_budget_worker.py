"""A worker process for the cross-process budget test and the bench: hammers one pool of one
emulator project through its own ``Budget`` on the shared database, and prints a JSON summary.

Usage: python amp_budget_worker.py '<json config>'
Config keys: database_url, table_prefix, rate_scale, fraction, base_url, api_key, secret_key,
threads, calls (per thread), kind ("user" | "deletion" | "dsar" | "rest"), query.
A call refused with BudgetExhausted is retried after its ``resume_at``, as a durable workflow
would, so every requested call eventually completes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.config import OrgConfig, ProjectConfig
from amplitude_dsr.errors import BudgetExhausted


def one_call(kind: str, amp: AmplitudeClient | DsarClient, query: str) -> None:
    if kind == "user" and isinstance(amp, AmplitudeClient):
        amp.user_search(query)
    elif kind == "deletion" and isinstance(amp, AmplitudeClient):
        today = date.today()
        amp.list_deletions(today, today)
    elif kind == "rest" and isinstance(amp, AmplitudeClient):
        amp.events_list()
    elif kind == "dsar" and isinstance(amp, DsarClient):
        try:
            amp.get(1)
        except Exception as exc:  # an unknown request ID is fine: the call was spent
            if type(exc).__name__ not in ("NotFound", "BadRequest"):
                raise
    else:
        raise ValueError(kind)


def main(config: dict[str, Any]) -> dict[str, Any]:
    budget = Budget(
        config["database_url"],
        fraction=config.get("fraction", 0.75),
        rate_scale=config["rate_scale"],
        table_prefix=config["table_prefix"],
        max_inline_wait=config.get("max_inline_wait", 30.0),
    )
    budget.create_tables()
    kind = config["kind"]
    keys = {"api_key": config["api_key"], "secret_key": config["secret_key"]}
    done = 0
    deferred = 0
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        nonlocal done, deferred
        amp: AmplitudeClient | DsarClient
        if kind == "dsar":
            amp = DsarClient(OrgConfig(base_url=config["base_url"], **keys), budget)
        else:
            amp = AmplitudeClient(ProjectConfig(base_url=config["base_url"], **keys), budget)
        with amp:
            for _ in range(config["calls"]):
                while True:
                    try:
                        one_call(kind, amp, config.get("query", "nobody-zz9"))
                        break
                    except BudgetExhausted as exc:
                        with lock:
                            deferred += 1
                        time.sleep(max(0.0, exc.resume_at.timestamp() - time.time()))
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return
                with lock:
                    done += 1

    threads = [threading.Thread(target=worker) for _ in range(config["threads"])]
    started = datetime.now(UTC).timestamp()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    budget.close()
    return {
        "done": done,
        "deferred": deferred,
        "errors": errors,
        "started": started,
        "finished": datetime.now(UTC).timestamp(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
