"""``test-connection``: check every configured credential with the cheapest documented call.

Per project (``docs/amplitude.md#test-connection-calls``): **access** by a User Search for a dummy ID that cannot
match anyone (``200 nomatch`` means the keys work; it costs 1 of the 360/hour user pool) and
**deletion** by listing today's deletion jobs (read-only, 1 call of the 1/second pool). With org
keys: **DSAR** by reading a DSAR request that does not exist: 404 means the key was accepted,
401 that it was not. A 401 is reported with the configured region, since keys only work on their
own region's host.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, PROJECT_OPT, guarded
from amplitude_dsr.config import Credentials, ProjectConfig, Settings
from amplitude_dsr.errors import (
    AmplitudeError,
    AuthenticationError,
    ConfigError,
    DeferredError,
    DomainError,
    NotFound,
    RateLimited,
)

DUMMY_USER_PREFIX = "amplitude-dsr-connection-check-"  # no real user_id starts like this
DUMMY_DSAR_ID_FLOOR = 9_000_000_000_000  # DSAR request IDs are integers; this one is unused
TIMEOUT = 15.0  # seconds per call: a check should answer quickly or say why not
MAX_ATTEMPTS = 2
MAX_RETRY_TIME = 20.0


@dataclass(frozen=True)
class Check:
    """One capability: ``ok`` True (works), False (refused or failing), None (not checked)."""

    ok: bool | None
    detail: str

    def cell(self) -> str:
        return {True: "ok", False: "FAILED", None: "not checked"}[self.ok]

    def document(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


def region_advice(credentials: Credentials) -> str:
    """What to try after a 401: keys work only on their own region's host."""
    other = "eu" if credentials.region == "us" else "us"
    advice = f"configured region: {credentials.region}; if these are {other.upper()} keys, try AMPLITUDE_REGION={other}"
    advice += f' (or region = "{other}" in the config file)'
    if credentials.base_url:
        advice += f"; note the base URL override {credentials.base_url}"
    return advice


def probe(call: Any, credentials: Credentials, *, not_found_ok: bool = False) -> Check:
    """Run one check call and turn its outcome into a :class:`Check`."""
    try:
        call()
    except NotFound:
        if not_found_ok:
            return Check(True, "key accepted (the dummy request is unknown, as expected)")
        return Check(False, "endpoint not found (404): is the base URL right?")
    except AuthenticationError as exc:
        return Check(False, f"{exc}; {region_advice(credentials)}")
    except (RateLimited, DeferredError) as exc:
        return Check(None, f"rate budget exhausted, try again later ({exc})")
    except AmplitudeError as exc:
        return Check(False, str(exc))
    return Check(True, "ok")


def check_project(project: ProjectConfig, budget: Budget) -> dict[str, Check]:
    """Access and deletion capability of one project's keys."""
    dummy = DUMMY_USER_PREFIX + secrets.token_hex(8)
    today = datetime.now(UTC).date()
    with AmplitudeClient(
        project, budget, timeout=TIMEOUT, max_attempts=MAX_ATTEMPTS, max_retry_time=MAX_RETRY_TIME
    ) as c:
        return {
            "access": probe(lambda: c.user_search(dummy), project),
            "deletion": probe(lambda: c.list_deletions(today, today), project),
        }


def check_org(settings: Settings, budget: Budget) -> Check | None:
    """DSAR capability of the org keys (None when no org keys are configured)."""
    org = settings.org
    if org is None:
        return None
    dummy = DUMMY_DSAR_ID_FLOOR + secrets.randbelow(10**12)
    with DsarClient(org, budget, timeout=TIMEOUT, max_attempts=MAX_ATTEMPTS, max_retry_time=MAX_RETRY_TIME) as c:
        return probe(lambda: c.get(dummy), org, not_found_ok=True)


def test_connection(
    project: list[str] = PROJECT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Check each configured credential and say which capabilities work (access, deletion, DSAR).

    Costs per project: 1 user-search call (of 360/hour) and 1 deletion-list call; with org
    keys, 1 DSAR GET. Exit 1 when a credential works for nothing, 2 when nothing is configured."""
    _test_connection(list(project or []), json_out)


@guarded
def _test_connection(names: list[str], json_out: bool) -> None:
    settings = common.settings()
    if not settings.projects and settings.org is None:
        raise ConfigError(
            "nothing configured: set AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY (and optionally "
            "AMPLITUDE_ORG_API_KEY, AMPLITUDE_ORG_SECRET_KEY) or add [[projects]] to the config file"
        )
    projects = [settings.project(n) for n in names] if names else list(settings.projects)
    with common.runtime("offline") as rt:
        results = [(p, check_project(p, rt.budget)) for p in projects]
        dsar = check_org(settings, rt.budget)
    failing = [p.name for p, checks in results if _fails_entirely(checks.values())]
    if dsar is not None and dsar.ok is False:
        failing.append("org (DSAR)")
    document = {
        "projects": [
            {"name": p.name, "region": p.region, **{k: v.document() for k, v in checks.items()}}
            for p, checks in results
        ],
        "org": None
        if dsar is None or settings.org is None
        else {"region": settings.org.region, "dsar": dsar.document()},
        "ok": not failing,
    }
    if json_out:
        common.emit_json(document)
    else:
        _print(results, dsar, settings)
    if failing:
        raise DomainError("credentials not working: " + ", ".join(failing))


def _fails_entirely(checks: Any) -> bool:
    values = [c.ok for c in checks]
    return True not in values and False in values


def _print(results: list[tuple[ProjectConfig, dict[str, Check]]], dsar: Check | None, settings: Settings) -> None:
    table = Table("project", "region", "access", "deletion", "DSAR")
    for p, checks in results:
        table.add_row(p.name, p.region, checks["access"].cell(), checks["deletion"].cell(), "-")
    if dsar is not None and settings.org is not None:
        table.add_row("(org keys)", settings.org.region, "-", "-", dsar.cell())
    common.out.print(table)
    for p, checks in results:
        for capability, check in checks.items():
            if check.ok is not True:
                common.out.print(f"{p.name} {capability}: {check.detail}", markup=False)
    if dsar is not None and dsar.ok is not True:
        common.out.print(f"org DSAR: {dsar.detail}", markup=False)
