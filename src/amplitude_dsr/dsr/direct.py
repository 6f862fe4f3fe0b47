"""The direct deletion path (``docs/deletion.md#two-paths``): submit what the person gave us, let
Amplitude resolve it, and check afterwards.

A user ID (or an email, which products store as a user ID, or the user IDs an identity map gives
for it) is submitted as it is; an Amplitude ID is submitted as it is; both with
``ignore_invalid_id``. The receipt names the Amplitude ID each user ID was resolved to
(``include_mapped_user_ids``), which is tracked like any other. Only a device ID, which the
deletion API does not take, is resolved first. Verification searches every identifier once the
jobs are done, and whatever it still finds is followed up by a resolve-first request
(``dsr/finish.py``).

User-pool cost: nothing before submission for user IDs and Amplitude IDs, one search per term
at verification; the resolve-first path also spends a search and an activity page per subject
before submitting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import intake
from amplitude_dsr.dsr.identity import SearchTerm, is_ambiguous, judge, search_terms
from amplitude_dsr.dsr.model import REGULATION_DAYS, Identifier, IdentifierKind
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.store import audit, names, repo

RESOLVE_FIRST = "resolve-first"
DIRECT = "direct"
PATHS = (RESOLVE_FIRST, DIRECT)


@dataclass
class Plan:
    """What the direct path submits for one request, and what it must resolve first."""

    user_ids: list[str] = field(default_factory=list)
    amplitude_ids: list[int] = field(default_factory=list)
    resolve_first: list[Identifier] = field(default_factory=list)


def plan(identifiers: Iterable[Identifier], identity_map: dict[str, list[str]] | None) -> Plan:
    """Split the request's search terms: user IDs and Amplitude IDs go as they are, device IDs
    (which the deletion API does not take) are resolved first."""
    out = Plan()
    for term in search_terms(identifiers, identity_map):
        if term.term_kind is IdentifierKind.USER_ID:
            out.user_ids.append(term.term)
        elif term.term_kind is IdentifierKind.AMPLITUDE_ID and term.term.isdigit():
            out.amplitude_ids.append(int(term.term))
        elif term.identifier not in out.resolve_first:
            out.resolve_first.append(term.identifier)
    out.user_ids = list(dict.fromkeys(out.user_ids))
    out.amplitude_ids = list(dict.fromkeys(out.amplitude_ids))
    return out


def queue_in(conn: Connection, request_id: str, projects: Sequence[str], submitted: Plan, org_wide: bool) -> int:
    """Queue the plan's user IDs and Amplitude IDs in every project (idempotent), inside the
    caller's transaction; returns how many were added."""
    added = 0
    for project in projects:
        added += names.queue_names(conn, request_id, project, submitted.user_ids, org_wide=org_wide)
        added += repo.queue_items_in(conn, request_id, project, submitted.amplitude_ids, org_wide=org_wide)
    return added


def stored_receipt(jobs: Iterable[DeletionJob], amplitude_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Jobs as the batch keeps them: without the user IDs Amplitude echoed (mapped entries and
    invalid user IDs name people; the receipt is stored in clear)."""
    own = {str(i) for i in amplitude_ids}
    out: list[dict[str, Any]] = []
    for job in jobs:
        data = job.model_dump(mode="json")
        for entry in data.get("amplitude_ids", []):
            entry.pop("user_id", None)
        data["invalid_ids"] = [i for i in data.get("invalid_ids", []) if str(i) in own]
        out.append(data)
    return out


def listed_receipt(jobs: Iterable[ListedJob], amplitude_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The jobs of a listing that hold any of ``amplitude_ids``, as a batch keeps its receipt
    (:func:`stored_receipt`), each with only the entries of those IDs: a listed job holds every
    request's IDs, and a receipt is read only for its own (``dsr/evidence.py``)."""
    own = set(amplitude_ids)
    return [job.wire(only=own) for job in jobs if job.holds_any(own)]


def mapping(jobs: Iterable[DeletionJob], user_ids: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    """From a receipt: user ID -> the Amplitude IDs Amplitude resolved it to, and the submitted
    user IDs it called invalid."""
    wanted = set(user_ids)
    mapped: dict[str, list[int]] = {}
    invalid: set[str] = set()
    for job in jobs:
        for entry in job.amplitude_ids:
            if entry.user_id is not None and entry.user_id in wanted:
                ids = mapped.setdefault(entry.user_id, [])
                if entry.amplitude_id not in ids:
                    ids.append(entry.amplitude_id)
        invalid.update(str(i) for i in job.invalid_ids if str(i) in wanted)
    return mapped, sorted(invalid - set(mapped))


def settle_lookups(rt: Runtime, project: str, settled: list[str]) -> None:
    """User IDs whose POST outcome the receipt did not tell (an uncertain POST, or a receipt
    without the mapping): search each one (exact ``user_id`` only) and look for its Amplitude IDs
    in the project's jobs. Found in a job: tracked from there. Found but in no job: Amplitude does
    not have it, so it is queued again. Not found: invalid. Never re-posted blindly."""
    pending = names.lookups(rt.engine, project)
    if not pending:
        return
    client = rt.client(project)
    listing: list[ListedJob] | None = None
    for lookup in pending:
        term = SearchTerm(Identifier(kind=IdentifierKind.USER_ID, value=lookup.user_id), lookup.user_id,
                          IdentifierKind.USER_ID)  # fmt: skip
        result = client.user_search(lookup.user_id)
        judged = judge(term, result)
        accepted = [c.amplitude_id for c in judged if c.accepted]
        found: dict[int, tuple[str, str]] = {}
        receipt_jobs: list[dict[str, Any]] = []
        if accepted:
            if listing is None:
                start, end = logic.reconcile_window(datetime.now(UTC).date())
                listing = client.list_deletions(start, end)
            batch = repo.get_batch(rt.engine, lookup.batch_id)
            found, _ = logic.reconcile(accepted, listing, (batch.posted_at or batch.created_at).date())
            receipt_jobs = listed_receipt(listing, found)
            outcome = "mapped" if found else "queued"
        else:
            # An answer about somebody else (a numeric user ID taken for an Amplitude ID) proves
            # nothing: submit it again rather than call it invalid.
            outcome = "queued" if is_ambiguous(term, result.type, judged) else "invalid"
        with repo.write_tx(rt.engine) as conn:
            changed = names.finish_lookup(
                conn, lookup, outcome, ids=list(found), id_days=found, receipt_jobs=receipt_jobs
            )
            for request_id in changed:
                audit.append(conn, request_id, "deletion_lookup", {"batch_id": lookup.batch_id, "outcome": outcome})
        if changed:
            settled.append(lookup.batch_id)


def follow_up(rt: Runtime, req: repo.RequestRow) -> str:
    """A resolve-first deletion of the same person, for what verification still found after a
    direct deletion (searched, with activity and merged IDs followed). Stored with a key derived
    from the original request: called again, it returns the same request. Returns its ID."""
    options = {k: v for k, v in req.options.items() if k not in ("deletion_path", "batch_key")}
    options.update(deletion_path=RESOLVE_FIRST, batch_key=f"follow-up:{req.id}")
    key = hashlib.sha256(f"follow-up:{req.id}".encode()).hexdigest()
    row = repo.NewRequest(
        kind="deletion", identifiers=list(req.identifiers), options=options, regulation=req.regulation,
        deadline_days=REGULATION_DAYS.get(req.regulation, REGULATION_DAYS["gdpr"]), idempotency_key=key,
    )  # fmt: skip
    digests = [audit.identifier_digest(i["kind"], i["value"]) for i in req.identifiers]
    [(request_id, _)] = intake.store(rt, [intake.Prepared(row, digests)])
    return request_id
