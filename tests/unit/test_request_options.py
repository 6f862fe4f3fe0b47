"""The typed request spec: every shell's options are validated in one place, ``dsr.api``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from amplitude_dsr.config import OrgConfig, ProjectConfig, Settings
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier, RequestOptions
from amplitude_dsr.errors import UsageError

PERSON = [Identifier.parse("user_id", "someone-1")]


def _rt() -> Any:
    project = ProjectConfig(name="web", api_key="k" * 32, secret_key="s" * 32)
    return SimpleNamespace(settings=Settings(projects=(project,), requester="dpo@example.com"))


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("access", {"colour": "red"}, "invalid request option 'colour'"),
        ("access", {"full_history": "sometimes"}, "invalid request option 'full_history'"),
        ("access", {"org_wide": True}, "org_wide applies to deletion requests only"),
        ("deletion", {"full_history": True}, "full_history applies to access requests only"),
        ("deletion", {"projects": ["mobile"]}, "mobile"),
        ("access", {"deletion_path": "direct"}, "deletion_path applies to deletion requests only"),
        ("deletion", {"deletion_path": "sideways"}, "invalid request option 'deletion_path'"),
        ("deletion", {"deletion_path": "direct", "org_wide": True}, "resolves its identifiers first"),
    ],
)
def test_bad_options_are_one_usage_error(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        api._prepare(_rt(), api.Spec(kind, PERSON, options), keyed="dedupe")
    assert "\n" not in str(caught.value)


def test_options_are_stored_as_given_and_a_deletion_names_its_requester() -> None:
    prepared = api._prepare(_rt(), api.Spec("deletion", PERSON, {"org_wide": True}), keyed="dedupe")
    assert prepared.row.options == {"org_wide": True, "requester": "dpo@example.com", "deletion_path": "resolve-first"}
    typed = api._prepare(_rt(), api.Spec("deletion", PERSON, RequestOptions(org_wide=True)), keyed="dedupe")
    assert typed.row.options == prepared.row.options
    assert typed.row.idempotency_key == prepared.row.idempotency_key


def test_a_deletion_takes_the_configured_path_unless_it_names_one() -> None:
    rt = _rt()
    rt.settings = rt.settings.model_copy(update={"deletion_path": "direct"})
    plain = api._prepare(rt, api.Spec("deletion", PERSON, {}), keyed="dedupe")
    assert plain.row.options["deletion_path"] == "direct"
    named = api._prepare(rt, api.Spec("deletion", PERSON, {"deletion_path": "resolve-first"}), keyed="dedupe")
    assert named.row.options["deletion_path"] == "resolve-first"
    org_wide = api._prepare(rt, api.Spec("deletion", PERSON, {"org_wide": True}), keyed="dedupe")
    assert org_wide.row.options["deletion_path"] == "resolve-first"  # org-wide always resolves first
    assert plain.row.idempotency_key == named.row.idempotency_key  # the path does not make it another request


def _rt_with_org() -> Any:
    project = ProjectConfig(name="web", api_key="k" * 32, secret_key="s" * 32)
    org = OrgConfig(api_key="o" * 32, secret_key="p" * 32)
    return SimpleNamespace(settings=Settings(projects=(project,), org=org, requester="dpo@example.com"))


TOMORROW = "tomorrow"  # replaced when the test runs, not when it is collected (a run may cross midnight)


def _tomorrow() -> str:
    return (datetime.now(UTC).date() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("access", {"dsar_start": "2020-13-01"}, "invalid request option 'dsar_start'"),
        ("access", {"dsar_end": "yesterday"}, "invalid request option 'dsar_end'"),
        ("access", {"dsar_start": "2011-12-31"}, "dsar_start is before 2012-01-01"),
        ("access", {"dsar_start": "2021-01-02", "dsar_end": "2021-01-01"}, "dsar_end is before dsar_start"),
        ("access", {"dsar_start": TOMORROW}, "dsar_start is in the future"),
        ("deletion", {"dsar_start": "2021-01-01"}, "apply to access requests only"),
    ],
)
def test_a_bad_dsar_range_is_one_usage_error(kind: str, options: dict[str, Any], message: str) -> None:
    options = {k: _tomorrow() if v == TOMORROW else v for k, v in options.items()}
    with pytest.raises(UsageError, match=message) as caught:
        api._prepare(_rt_with_org(), api.Spec(kind, PERSON, options), keyed="dedupe")
    assert "\n" not in str(caught.value)


def test_a_dsar_range_needs_org_keys_and_shapes_the_key_only_when_given() -> None:
    with pytest.raises(UsageError, match="need organisation keys"):
        api._prepare(_rt(), api.Spec("access", PERSON, {"dsar_end": "2021-01-01"}), keyed="dedupe")
    rt = _rt_with_org()
    plain = api._prepare(rt, api.Spec("access", PERSON, {}), keyed="dedupe")
    ranged = api._prepare(rt, api.Spec("access", PERSON, {"dsar_start": "2021-01-01"}), keyed="dedupe")
    other = api._prepare(rt, api.Spec("access", PERSON, {"dsar_start": "2021-02-01"}), keyed="dedupe")
    assert ranged.row.options == {"dsar_start": "2021-01-01"}
    assert len({plain.row.idempotency_key, ranged.row.idempotency_key, other.row.idempotency_key}) == 3
    # A request without a range keeps the key earlier versions gave it (batch re-runs find it).
    material = {"kind": "access", "ids": [["user_id", "someone-1"]], "opts": dict.fromkeys(
        ("projects", "org_wide", "full_history", "batch_key"))}  # fmt: skip
    assert plain.row.idempotency_key == hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
