"""A bug or an infrastructure failure inside a workflow ends the request as ``failed`` with an
identifier-free reason, instead of leaving it mid-way forever (DBOS ``ERROR``, request still
``resolving``). Nothing is sent to Amplitude after the failure, and no partial report is left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amplitude_dsr.dsr import access, api, deletion
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit, repo

SECRET_LOOKING = "person@example.org"


def explode(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(f"connection lost while handling {SECRET_LOOKING}")


@pytest.mark.parametrize(("kind", "module"), [("access", access), ("deletion", deletion)])
def test_an_unexpected_exception_fails_the_request_without_leaking_its_message(
    kind: str,
    module: Any,
    make_runtime: Any,
    emulator: EmulatorServer,
    catalog: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(module, "resolve", explode)
    rt = make_runtime()
    out = tmp_path / "out"
    user = catalog["web"]["ordinary"][0]
    rid, _ = api.submit(rt, kind, [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(out)})
    assert api.wait(rt, rid, timeout=120) == "failed"
    row = repo.get_request(rt.engine, rid)
    assert row.status == "failed"
    assert row.error is not None and row.error.startswith("RuntimeError: unexpected error")
    assert SECRET_LOOKING not in row.error
    with rt.engine.connect() as conn:
        audit.verify(conn)
        [failed] = [e for e in audit.entries(conn, rid) if e.kind == "failed"]
    assert SECRET_LOOKING not in str(failed.detail)
    assert "RuntimeError" in caplog.text and SECRET_LOOKING not in caplog.text
    # Resolution never ran, so Amplitude received nothing at all.
    assert emulator.admin.request_log() == []
    written = sorted(p for p in out.rglob("*") if p.is_file()) if out.exists() else []
    if kind == "access":
        assert written == []  # no partial report
    else:  # a deletion keeps its evidence: a certificate that says it failed, and why
        certificate = next(p for p in written if p.suffix == ".json")
        text = certificate.read_text()
        assert '"failed"' in text and "RuntimeError" in text and SECRET_LOOKING not in text
