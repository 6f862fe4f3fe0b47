"""What a deletion document is, from the request's final status: its title and plain statement.

Only a deletion that was carried out and verified is titled a certificate of deletion. A
``failed`` request gets a document that says the deletion is NOT complete, why, what Amplitude
accepted anyway and what to do next; ``cancelled``, ``nothing_found``, ``recollected``,
``still_present`` and a request still running each get a title that says what happened.
"""

from __future__ import annotations

from typing import Any

from amplitude_dsr.dsr.model import DeletionResult

CERTIFIED = ("verified", "completed", "done")
KINDS: dict[str, tuple[str, str, bool]] = {
    # status: (document kind, title, deletion complete)
    "verified": ("certificate_of_deletion", "Certificate of deletion from Amplitude Analytics", True),
    "recollected": (
        "deleted_then_recollected",
        "Deletion record: the data was deleted, but new data has been collected since",
        False,
    ),
    "still_present": ("deletion_not_complete", "Deletion NOT complete: data is still present in Amplitude", False),
    "failed": ("deletion_not_complete", "Deletion NOT complete: the deletion request failed", False),
    "cancelled": ("deletion_cancelled", "Deletion cancelled: record of a withdrawn deletion request", False),
    "nothing_found": ("nothing_to_delete", "No data to delete: record of a deletion request", True),
}
IN_PROGRESS = ("deletion_in_progress", "Deletion in progress: not complete yet", False)


def accepted_by_amplitude(result: DeletionResult) -> dict[str, Any]:
    """What Amplitude accepted: per job (project, day, latest known status) how many of the
    request's IDs, the total accepted, and how many IDs the request had to delete."""
    latest = {h.scope: h.status for h in sorted(result.history, key=lambda h: h.at) if h.scope.startswith("job ")}
    jobs: dict[tuple[str, str], dict[str, Any]] = {}
    for receipt in result.receipts:
        job = jobs.setdefault(
            (receipt.project, receipt.job_day),
            {
                "project": receipt.project,
                "job_day": receipt.job_day,
                "status": latest.get(f"job {receipt.project} {receipt.job_day}", receipt.status),
                "ids": set(),
            },
        )
        job["ids"].update(receipt.amplitude_ids)
    accepted = {i for j in jobs.values() for i in j["ids"]}
    wanted = {i for s in result.resolution.subjects for i in s.all_amplitude_ids}
    return {
        "jobs": [{**{k: v for k, v in j.items() if k != "ids"}, "amplitude_ids": len(j["ids"])} for j in jobs.values()],
        "amplitude_ids": len(accepted),
        "amplitude_ids_to_delete": len(wanted | accepted),
    }


def outcome(result: DeletionResult) -> dict[str, Any]:
    """The ``outcome`` member of the certificate: document kind, title, whether the deletion is
    complete, a plain statement, the failure reason and the next steps."""
    status = "verified" if result.status in CERTIFIED else result.status
    kind, title, complete = KINDS.get(status, IN_PROGRESS)
    accepted = accepted_by_amplitude(result)
    statement, next_steps = _explain(status, result, accepted)
    return {
        "document": kind,
        "title": title,
        "deletion_complete": complete,
        "statement": statement,
        "failure_reason": result.failure_reason if status == "failed" else None,
        "accepted_by_amplitude": accepted,
        "next_steps": next_steps,
    }


def _jobs_text(accepted: dict[str, Any]) -> str:
    parts = [f"{j['amplitude_ids']} ID(s) in project {j['project']} for {j['job_day']}" for j in accepted["jobs"]]
    return "; ".join(parts)


def _explain(status: str, result: DeletionResult, accepted: dict[str, Any]) -> tuple[str, list[str]]:
    got, total = accepted["amplitude_ids"], accepted["amplitude_ids_to_delete"]
    if status == "verified":
        return (
            f"Amplitude deleted the {got} Amplitude ID(s) of this request, and a search afterwards "
            "found no remaining data.",
            [],
        )
    if status == "recollected":
        return (
            f"Amplitude deleted the {got} Amplitude ID(s) of this request, but a search afterwards found data "
            "collected again for the same person after the deletion.",
            ["Stop tracking the person at the source (SDK opt-out), then submit a new deletion request."],
        )
    if status == "still_present":
        return (
            "Amplitude reported its deletion job done, but a search afterwards still found the deleted user(s).",
            ["Check the job with Amplitude Support, then submit the deletion again."],
        )
    if status == "failed":
        reason = result.failure_reason or "no reason was recorded"
        if got:
            accepted_text = (
                f"Amplitude accepted {got} of the {total} Amplitude ID(s) ({_jobs_text(accepted)}); "
                "those are deleted on their job day, the others are not."
            )
            steps = [
                "Fix the cause above, then submit the deletion again: IDs Amplitude already accepted stay "
                "scheduled, and the new request covers the rest.",
            ]
        else:
            accepted_text = "Amplitude accepted nothing, so nothing will be deleted."
            steps = ["Fix the cause above, then submit the deletion again."]
        return f"The deletion is NOT complete. The request failed: {reason}. {accepted_text}", steps
    if status == "cancelled":
        return (
            "The request was cancelled before Amplitude deleted anything"
            + (f"; its {got} Amplitude ID(s) were withdrawn from Amplitude's staging job(s)." if got else "."),
            ["Submit a new deletion request if the data must still be deleted."],
        )
    if status == "nothing_found":
        if result.resolution.subjects:
            return (
                "Users were found, but Amplitude scheduled no deletion for them (see the receipts and the history).",
                ["Check the history below, then submit the deletion again."],
            )
        return ("No Amplitude user matched the identifiers exactly in any searched project; nothing was deleted.", [])
    return (
        f"The deletion is not complete yet (status {status}); Amplitude accepted {got} of the {total} Amplitude ID(s)"
        + (f" ({_jobs_text(accepted)})." if got else "."),
        ["Wait for the final certificate: the worker tracks the job until it is done and verified."],
    )
