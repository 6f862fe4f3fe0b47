"""The direct deletion path end to end against the emulator: user IDs submitted as they are,
Amplitude IDs taken from the receipt, verification by search afterwards, a follow-up for what it
still finds. Every claim is checked against the emulator's request log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store.tables import deletion_batches, deletion_names

from .conftest import api_calls
from .test_deletion import DELETIONS, eventually, posts, receipted, user_clock, user_id_of

__all__ = ["user_clock"]  # the fixture, imported for the follow-up test
DIRECT = {"deletion_path": "direct"}
USER_POOL = ("/usersearch", "/useractivity")


def user_pool_calls(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [e for e in emulator.admin.request_log() if e["path"].endswith(USER_POOL)]


def test_a_user_id_is_submitted_as_given_and_verified_with_one_search(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user_id, aid = user_id_of(catalog, index=3)
    rt = make_runtime()
    out = {"out_dir": str(tmp_path / "out"), **DIRECT}
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)], options=out)
    assert api.wait(rt, rid) == "verified"
    [post] = posts(emulator)
    assert post["body"]["user_ids"] == [user_id] and "amplitude_ids" not in post["body"]
    assert post["body"]["include_mapped_user_ids"] == "True" and post["body"]["ignore_invalid_id"] == "True"
    # Nothing before the POST; one exact search afterwards.
    pool = user_pool_calls(emulator)
    assert [c["path"].endswith("/usersearch") for c in pool] == [True]
    assert pool[0]["seq"] > post["seq"]
    [item] = repo.items_for(rt.engine, rid)
    assert (item.amplitude_id, item.state, item.job_status) == (aid, "receipted", "done")
    cert = json.loads((tmp_path / "out" / rid / "certificate.json").read_text())
    [receipt] = cert["receipts"]
    assert receipt["amplitude_ids"] == [aid]
    with rt.engine.connect() as conn:
        # The user ID is not kept once Amplitude answered: not on the name, not in the stored receipt.
        assert conn.execute(sa.select(deletion_names.c.state, deletion_names.c.user_id)).all() == [("mapped", None)]
        stored = conn.execute(sa.select(deletion_batches.c.receipt)).scalar_one()
        kinds = [e.kind for e in audit.entries(conn, rid)]
    assert user_id not in json.dumps(stored)
    assert kinds.index("deletion_receipt") < kinds.index("verified")


def test_an_unknown_user_id_ends_nothing_found_after_one_post_and_no_search(
    make_runtime: Any, emulator: EmulatorServer
) -> None:
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", "nobody-here@example.org")], options=DIRECT)
    assert api.wait(rt, rid) == "nothing_found"
    [post] = posts(emulator)
    assert post["body"]["user_ids"] == ["nobody-here@example.org"]
    assert user_pool_calls(emulator) == []
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(deletion_names.c.state, deletion_names.c.user_id)).all() == [("invalid", None)]


def test_many_people_share_one_post_with_amplitude_ids_and_user_ids(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    people = [user_id_of(catalog, index=i) for i in range(4)]
    rt = make_runtime(max_linger=0.5)
    ids = [api.submit(rt, "deletion", [Identifier.parse("user_id", u)], options=DIRECT)[0] for u, _ in people[:3]]
    ids.append(api.submit(rt, "deletion", [Identifier.parse("amplitude_id", str(people[3][1]))], options=DIRECT)[0])
    assert [api.wait(rt, rid) for rid in ids] == ["verified"] * 4
    sent = posts(emulator)
    submitted = [u for p in sent for u in p["body"].get("user_ids", [])]
    assert sorted(submitted) == sorted(u for u, _ in people[:3])  # each user ID exactly once
    assert [a for p in sent for a in p["body"].get("amplitude_ids", [])] == [people[3][1]]
    assert len(sent) < 4  # batched across requests
    for rid, (_, aid) in zip(ids, people, strict=True):
        assert [i.amplitude_id for i in repo.items_for(rt.engine, rid)] == [aid]


def test_a_dropped_post_of_user_ids_is_settled_by_search_and_listing_not_reposted(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    user_id, aid = user_id_of(catalog, index=5)
    emulator.admin.inject_fault("drop_after", path="/api/2/deletions/users", method="POST")
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)], options=DIRECT)
    assert api.wait(rt, rid) == "verified"
    [post] = posts(emulator)  # Amplitude scheduled it: never sent again
    assert post["fault"] == "drop_after" and post["body"]["user_ids"] == [user_id]
    searches = api_calls(emulator, "/usersearch")
    listings = api_calls(emulator, DELETIONS)
    assert searches[0]["seq"] > post["seq"] and any(g["seq"] > searches[0]["seq"] for g in listings)
    [item] = repo.items_for(rt.engine, rid)
    assert item.amplitude_id == aid and item.job_status == "done"
    with rt.engine.connect() as conn:
        kinds = [e.kind for e in audit.entries(conn, rid)]
    assert kinds.index("deletion_post_uncertain") < kinds.index("deletion_lookup") < kinds.index("verified")


def test_what_verification_still_finds_is_followed_up_by_a_resolve_first_request(
    make_runtime: Any, user_clock: EmulatorServer, catalog: dict[str, Any]
) -> None:
    emulator = user_clock
    user_id, aid = user_id_of(catalog, index=2)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)], options=DIRECT)
    eventually(lambda: receipted(rt, rid), "the receipt")
    emulator.admin.advance(days=10.5)
    eventually(lambda: repo.get_request(rt.engine, rid).status == "submitted", "status submitted")
    back = emulator.admin.add_events("web", aid, 5)  # tracked again under the same user ID
    emulator.admin.advance(days=8)
    assert api.wait(rt, rid) == "recollected"  # what is true of this request stays said
    with rt.engine.connect() as conn:
        [follow] = [e.detail["request_id"] for e in audit.entries(conn, rid) if e.kind == "follow_up"]
    row = repo.get_request(rt.engine, str(follow))
    assert (
        row.options["deletion_path"] == "resolve-first"
        and row.identifiers == repo.get_request(rt.engine, rid).identifiers
    )
    eventually(lambda: receipted(rt, str(follow)), "the follow-up's receipt")
    emulator.admin.advance(days=19)
    assert api.wait(rt, str(follow)) == "verified"
    sent = posts(emulator)
    assert len(sent) == 2 and sent[1]["body"]["amplitude_ids"] == [back["amplitude_id"]]
