"""The Fides connector template (``integrations/fides/``): both YAML files parse and agree, every
request it makes exists in the service's ``/openapi.json``, and its polling flow, followed over
HTTP exactly as the template describes it (render the body, read the correlation ID, poll the
status field until its completed value, fetch the result), answers an access and an erasure
against the real service and the emulator."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import api_calls, eventually
from .test_opendsr import DELETIONS

FIDES = Path(__file__).resolve().parents[2] / "integrations" / "fides"
PLACEHOLDER = re.compile(r"<([a-z0-9_]+)>")
# What Fides fills in itself (saas_util: uuid, iso_8601_datetime; the polling strategy: correlation_id).
BUILT_IN = {"uuid", "iso_8601_datetime", "correlation_id"}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((FIDES / name).read_text(encoding="utf-8"))
    return doc


def config() -> dict[str, Any]:
    saas: dict[str, Any] = load("amplitude_dsr_config.yml")["saas_config"]
    return saas


def requests_of(saas: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(action, request) for every request the template sends, polling ones included."""
    out: list[tuple[str, dict[str, Any]]] = [("test", saas["test_request"])]
    for endpoint in saas["endpoints"]:
        for action, request in endpoint["requests"].items():
            out.append((action, request))
            polling = request["async_config"]["configuration"]
            out.append((f"{action} status", polling["status_request"]))
            if "result_request" in polling:
                out.append((f"{action} result", polling["result_request"]))
    return out


def test_both_files_parse_and_agree() -> None:
    saas = config()
    [dataset] = load("amplitude_dsr_dataset.yml")["dataset"]
    assert saas["fides_key"] == dataset["fides_key"] == "<instance_fides_key>"
    assert {e["name"] for e in saas["endpoints"]} == {c["name"] for c in dataset["collections"]}
    params = {p["name"] for p in saas["connector_params"]}
    assert saas["client_config"]["authentication"] == {"strategy": "bearer", "configuration": {"token": "<api_token>"}}
    assert {"domain", "api_token"} <= params
    for action, request in requests_of(saas):
        named = {v["name"] for v in request.get("param_values", [])}
        for value in request.get("param_values", []):
            assert value.get("identity") or value.get("connector_param") in params, (action, value)
        text = json.dumps(request)
        for placeholder in PLACEHOLDER.findall(text):
            assert placeholder in named | BUILT_IN, (action, placeholder)
        if request.get("body"):
            json.loads(PLACEHOLDER.sub("x", request["body"]))  # valid JSON once filled in
    read = saas["endpoints"][0]["requests"]
    assert {r["async_config"]["strategy"] for r in read.values()} == {"polling"}
    assert "result_request" in read["read"]["async_config"]["configuration"]  # access needs its data


def test_every_request_exists_in_the_openapi_document(start_service: Any) -> None:
    svc = start_service("--no-worker")
    paths = httpx.get(f"{svc.url}/openapi.json").json()["paths"]
    for action, request in requests_of(config()):
        path = request["path"].replace("<correlation_id>", "{subject_request_id}")
        assert path in paths, (action, path)
        assert request["method"].lower() in paths[path], (action, request["method"])


def render(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def dotted(doc: Any, path: str) -> Any:
    """pydash.get as Fides reads a response: a dotted path."""
    for part in path.split("."):
        doc = doc[part]
    return doc


def run_like_fides(svc: Any, token: str, request: dict[str, Any], email: str) -> tuple[str, httpx.Response | None]:
    """Follow one request of the template with its polling configuration; returns the
    correlation ID and the result response (``None`` without a result request)."""
    saas = config()
    defaults = {p["name"]: p.get("default_value") for p in saas["connector_params"]}
    values = {"uuid": str(uuid.uuid4()), "iso_8601_datetime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for value in request["param_values"]:
        values[value["name"]] = email if value.get("identity") == "email" else str(defaults[value["connector_param"]])
    headers = {h["name"]: h["value"] for h in request.get("headers", [])} | {"Authorization": f"Bearer {token}"}
    started = httpx.request(
        request["method"], svc.url + render(request["path"], values), headers=headers,
        content=render(request["body"], values).encode(), timeout=60,
    )  # fmt: skip
    assert started.status_code == 201, started.text
    correlation = str(dotted(started.json(), request["correlation_id_path"]))
    values["correlation_id"] = correlation
    polling = request["async_config"]["configuration"]
    status = polling["status_request"]
    auth = {"Authorization": f"Bearer {token}"}

    def completed() -> bool:
        answer = httpx.request(status["method"], svc.url + render(status["path"], values), headers=auth)
        assert answer.status_code == 200 and "application/json" in answer.headers["content-type"], answer.text
        return bool(dotted(answer.json(), status["status_path"]) == status["status_completed_value"])

    eventually(completed, "the status field to reach its completed value")
    if "result_request" not in polling:
        return correlation, None
    result = polling["result_request"]
    return correlation, httpx.request(result["method"], svc.url + render(result["path"], values), headers=auth)


@pytest.mark.slow
def test_the_polling_flow_answers_an_access_and_an_erasure(start_service: Any, make_token: Any, emulator: Any) -> None:
    user = emulator.admin.add_user("web", user_id="fides-subject@example.org", events=4)
    token = make_token("fides", "submit", "read")
    svc = start_service()
    requests = config()["endpoints"][0]["requests"]

    correlation, result = run_like_fides(svc, token, requests["read"], user["user_id"])
    assert re.fullmatch(r"[0-9a-f-]{36}", correlation)
    assert result is not None and result.status_code == 200
    # Fides stores a zip answer as an attachment (polling_response_handler: application/zip).
    assert result.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        export = json.loads(archive.read("export.json"))
        assert {"export.json", "report.html", "events.csv", "manifest.json"} <= set(archive.namelist())
    assert sum(len(s["events"]) for s in export["subjects"]) == user["num_events"]

    _, nothing = run_like_fides(svc, token, requests["update"], user["user_id"])
    assert nothing is None
    posted = [aid for p in api_calls(emulator, DELETIONS, "POST") for aid in p["body"]["amplitude_ids"]]
    assert posted == [user["amplitude_id"]]
