"""The deletion certificate: ``certificate.json``, ``certificate.html`` and ``manifest.json``.

The certificate is the evidence of one deletion request: what was asked, how identities were
resolved, Amplitude's receipts, every status change, the verification searches afterwards and the
audit chain head at the time of writing. Its schema is documented in
``docs/certificate-schema.md``.

Only a verified deletion is titled a certificate of deletion; every other final status gets a
document that says what happened (``_outcome.py``). Like the access package it names only the
data subject; given ``operator_dir``, the full resolution goes to the operator record.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr.model import DeletionResult
from amplitude_dsr.dsr.report._operator import write_operator_record
from amplitude_dsr.dsr.report._outcome import outcome
from amplitude_dsr.dsr.report._output import atomic_package, iso, now_utc
from amplitude_dsr.dsr.report._present import attempt_view, environment, identifier_label
from amplitude_dsr.dsr.report._privacy import excluded_sentence, own_amplitude_ids, public_resolution_json

CERTIFICATE_SCHEMA = "amplitude-dsr/deletion-certificate"
CERTIFICATE_SCHEMA_VERSION = 2


def certificate_json(result: DeletionResult, *, issued_at: datetime | None = None) -> dict[str, Any]:
    """The certificate of ``result`` as a JSON-ready dict (``issued_at`` defaults to now)."""
    receipts = [r.model_dump(mode="json") for r in result.receipts]
    verifications = [v.model_dump(mode="json") for v in result.verifications]
    submitted = sorted({i for r in result.receipts for i in r.amplitude_ids})
    return {
        "schema": CERTIFICATE_SCHEMA,
        "schema_version": CERTIFICATE_SCHEMA_VERSION,
        "issued_at": iso(issued_at or now_utc()),
        "request": {
            "id": result.request_id,
            "created_at": iso(result.created_at),
            "completed_at": iso(result.completed_at) if result.completed_at else None,
            "regulation": result.regulation,
            "requester": result.requester,
            "org_wide": result.org_wide,
        },
        "identifiers": [i.model_dump(mode="json") for i in result.identifiers],
        "outcome": outcome(result),
        "resolution": {
            **public_resolution_json(result.resolution),
            "subjects": [s.model_dump(mode="json") for s in result.resolution.subjects],
        },
        "receipts": receipts,
        "history": [h.model_dump(mode="json") for h in sorted(result.history, key=lambda h: h.at)],
        "verifications": verifications,
        "summary": {
            "projects": sorted({r.project for r in result.receipts}),
            "amplitude_ids_submitted": submitted,
            "invalid_ids": sorted({i for r in result.receipts for i in r.invalid_ids}),
            "verified": sum(v.outcome == "verified" for v in result.verifications),
            "recollected": sum(v.outcome == "recollected" for v in result.verifications),
        },
        "final_status": result.status,
        "audit_chain_head": result.audit_head,
    }


def write_certificate(
    result: DeletionResult, out_dir: Path, *, now: datetime | None = None, operator_dir: Path | None = None
) -> Path:
    """Write the certificate of ``result`` atomically to ``out_dir/<request_id>/`` and return it.

    Replaces an existing certificate of the same request; on any error nothing is left behind.
    With ``operator_dir`` (``<data_dir>/operator``) the operator record is written there first.
    """
    issued = now or now_utc()
    document = certificate_json(result, issued_at=issued)
    if operator_dir is not None:
        write_operator_record(operator_dir, result.request_id, "deletion", result.resolution, now=issued)
    with atomic_package(out_dir, result.request_id) as package:
        with package.open("certificate.json") as out:
            out.write(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        with package.open("certificate.html") as html:
            template = environment().get_template("certificate.html.j2")
            for chunk in template.generate(_context(result, document, issued)):
                html.write(chunk)
        package.write_manifest(result.request_id, issued, {"document": document["outcome"]["document"]})
    return out_dir / result.request_id


def _context(result: DeletionResult, document: dict[str, Any], issued: datetime) -> dict[str, Any]:
    own = own_amplitude_ids(result.resolution)
    searches = [
        {"identifier": identifier_label(a.identifier), **attempt_view(a, own)} for a in result.resolution.attempts
    ]
    excluded = document["resolution"]["excluded_candidates"]
    verifications = [
        {
            "identifier": identifier_label(v.identifier),
            "v": v,
        }
        for v in result.verifications
    ]
    return {
        "r": result,
        "doc": document,
        "issued_at": issued,
        "identifiers": [identifier_label(i) for i in result.identifiers],
        "searches": searches,
        "unresolved": [identifier_label(i) for i in result.resolution.unresolved()],
        "history": sorted(result.history, key=lambda h: h.at),
        "verifications": verifications,
        "outcome": document["outcome"],
        "excluded": excluded_sentence(excluded) if excluded else None,
    }
