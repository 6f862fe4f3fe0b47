"""The direct deletion path's pure parts: what is submitted as given, and what a receipt says."""

from __future__ import annotations

from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.dsr import direct
from amplitude_dsr.dsr.model import Identifier


def test_plan_submits_user_ids_and_amplitude_ids_as_given_and_resolves_device_ids_first() -> None:
    idents = [
        Identifier.parse("email", "Ann@Example.org"),
        Identifier.parse("user_id", "u-1"),
        Identifier.parse("amplitude_id", "123"),
        Identifier.parse("device_id", "dev-9"),
        Identifier.parse("email", "bob@example.org"),
    ]
    plan = direct.plan(idents, {"bob@example.org": ["b-7", "b-8"]})
    # An email is the product's user ID in both cases it may be stored in; a mapped one is its user IDs.
    assert plan.user_ids == ["Ann@Example.org", "ann@example.org", "u-1", "b-7", "b-8"]
    assert plan.amplitude_ids == [123]
    assert plan.resolve_first == [idents[3]]


def _job(entries: list[dict[str, object]], invalid: list[str]) -> DeletionJob:
    return DeletionJob.model_validate(
        {"day": "2026-12-20", "status": "staging", "amplitude_ids": entries, "invalid_ids": invalid}
    )


def test_a_receipt_maps_user_ids_and_is_stored_without_them() -> None:
    job = _job(
        [
            {"amplitude_id": 11, "requester": "r", "requested_on_day": "2026-12-06", "user_id": "u-1"},
            {"amplitude_id": 12, "requester": "r", "requested_on_day": "2026-12-06", "user_id": "someone-else"},
            {"amplitude_id": 13, "requester": "r", "requested_on_day": "2026-12-06"},
        ],
        ["u-2", "99"],
    )
    mapped, invalid = direct.mapping([job], ["u-1", "u-2", "u-3"])
    assert mapped == {"u-1": [11]}
    assert invalid == ["u-2"]  # u-3: neither mapped nor invalid, so it is looked up
    [stored] = direct.stored_receipt([job], [13, 99])
    assert all("user_id" not in e for e in stored["amplitude_ids"])
    assert stored["invalid_ids"] == ["99"]  # only our own Amplitude IDs: a user ID names a person
    assert "u-1" not in str(stored) and "u-2" not in str(stored)
