"""Results as short-lived signed links: ``GET /opendsr/v2/results/{id}?expires=..&signature=..``.

A final request's ``results_url`` (in its status and its callbacks) is a link that works without
a token until it expires (``links.DEFAULT_TTL``, ``serve --results-link-ttl``): the signature, an
HMAC-SHA256 with a key only this service holds (``service/links.py``), is the authorisation. A
fresh link comes with every status read. The answer is one zip of the request's package: the
access package (``export.json``, ``report.html``, ``events.csv``, ``manifest.json``) or the
deletion certificate (``certificate.json``, ``certificate.html``, ``manifest.json``).

Without ``expires`` and ``signature`` the same path answers a caller with a bearer token of the
``read`` scope, for its own requests (``admin``: any): what a client that cannot follow a link it
was given (Fides' polling ``result_request``, ``integrations/fides/``) fetches.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask

from amplitude_dsr.service import auth
from amplitude_dsr.service.context import Service, bearer, service_of
from amplitude_dsr.service.errors import ApiError
from amplitude_dsr.service.links import results_dir
from amplitude_dsr.service.models import ErrorResponse
from amplitude_dsr.store import repo, service_repo
from amplitude_dsr.store.db import private_dir

PATH = "/opendsr/v2/results"
router = APIRouter(tags=["OpenDSR"])


def results_url(service: Service, subject_request_id: str, row: repo.RequestRow) -> str | None:
    """A fresh signed link to the request's results, or ``None`` while it has none."""
    if results_dir(row) is None:
        return None
    query = service.results.query(subject_request_id, time.time())
    return service.config.url(f"{PATH}/{subject_request_id}?{query}")


@router.get(
    f"{PATH}/{{subject_request_id}}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The package or certificate, zipped"},
        401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
    },
)  # fmt: skip
def results(
    subject_request_id: str,
    request: Request,
    expires: int = Query(0, ge=0, le=2**40),
    signature: str = Query("", max_length=100),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> FileResponse:
    """The request's results as one zip: with the signed link from its status (no token: the
    signature is the authorisation until it expires), or with a ``read`` token for its own
    requests and no link parameters."""
    service = service_of(request)
    known = service_repo.get_mapped(service.rt.engine, subject_request_id)
    if not expires and not signature:
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        caller = auth.authenticate(service.rt.engine, header)
        if caller is None:
            raise ApiError(401, "a signed results link or a valid bearer token is required", "Unauthorized")
        if not caller.may("read"):
            raise ApiError(403, "this token lacks the 'read' scope", "Forbidden")
        if known is not None and known.controller_id != caller.name and not caller.may("admin"):
            known = None  # another controller's request is as unknown as a missing one
    elif not service.results.valid(subject_request_id, expires, signature, time.time()):
        raise ApiError(403, "this results link is invalid or has expired; read the status for a new one", "Forbidden")
    row = repo.get_request(service.rt.engine, known.request_id) if known is not None else None
    folder = results_dir(row) if row is not None else None
    if row is None or folder is None:
        raise ApiError(404, "no results for this request (yet)", "NotFound")
    archive = _zip(folder, service.rt.data_dir)
    return FileResponse(
        archive, media_type="application/zip", filename=f"{row.id}.zip", background=BackgroundTask(archive.unlink)
    )


def _zip(folder: Path, data_dir: Path) -> Path:
    """The folder's files in a new zip under the data directory (private; removed once sent)."""
    work = private_dir(data_dir / "work")
    fd, name = tempfile.mkstemp(prefix="results-", suffix=".zip", dir=work)
    os.close(fd)
    with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, arcname=path.name)
    return Path(name)
