"""Pure identity rules: which searches to run, which matches are the data subject, and why."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude.models import UserData, UserSearchResult
from amplitude_dsr.dsr.identity import (
    EXACT_AMPLITUDE_ID,
    EXACT_USER_OR_DEVICE,
    PREFIX,
    SearchTerm,
    build_subject,
    confirm,
    judge,
    merge_subjects,
    search_terms,
)
from amplitude_dsr.dsr.model import Identifier, IdentifierKind, Subject


def ident(kind: str, value: str) -> Identifier:
    return Identifier.parse(kind, value)


def term(kind: str, value: str) -> SearchTerm:
    return search_terms([ident(kind, value)])[0]


def result(match_type: str, *matches: tuple[int, str | None]) -> UserSearchResult:
    return UserSearchResult.model_validate(
        {"type": match_type, "matches": [{"amplitude_id": a, "user_id": u} for a, u in matches]}
    )


# --- search_terms -------------------------------------------------------------------------------


def test_email_is_searched_as_a_user_id_verbatim() -> None:
    [t] = search_terms([ident("email", "Jane@Example.com")])
    assert (t.term, t.term_kind, t.via) == ("Jane@Example.com", IdentifierKind.USER_ID, "identifier")


def test_identity_map_replaces_the_email_with_its_user_ids() -> None:
    email = ident("email", "Jane@Example.com")
    terms = search_terms([email], {"jane@example.com": ["u-1", "u-2", "u-1"]})
    assert [(t.term, t.term_kind, t.via) for t in terms] == [
        ("u-1", IdentifierKind.USER_ID, "identity_map"),
        ("u-2", IdentifierKind.USER_ID, "identity_map"),
    ]
    assert all(t.identifier == email for t in terms)


def test_email_without_a_map_entry_falls_back_to_itself() -> None:
    [t] = search_terms([ident("email", "a@b.co")], {"other@b.co": ["x"]})
    assert t.term == "a@b.co" and t.via == "identifier"


@pytest.mark.parametrize("kind", ["user_id", "amplitude_id", "device_id"])
def test_other_kinds_are_searched_as_themselves(kind: str) -> None:
    [t] = search_terms([ident(kind, "12345")])
    assert (t.term, t.term_kind.value) == ("12345", kind)


identifiers = st.builds(
    Identifier,
    kind=st.sampled_from(list(IdentifierKind)),
    value=st.text(alphabet="abc@.1", min_size=1, max_size=6),
)


@given(st.lists(identifiers, max_size=8))
def test_search_terms_are_unique_and_cover_every_identifier(idents: list[Identifier]) -> None:
    terms = search_terms(idents)
    keys = [(t.identifier, t.term, t.term_kind) for t in terms]
    assert len(keys) == len(set(keys))
    assert {t.identifier for t in terms} == set(idents)
    assert all(t.term_kind is not IdentifierKind.EMAIL for t in terms)


# --- judge --------------------------------------------------------------------------------------

JUDGE_TABLE: list[tuple[str, tuple[str, str], UserSearchResult, list[bool], str]] = [
    (
        "exact user_id accepted, mixed-in prefix rejected",
        ("user_id", "bob@example.co"),
        result(EXACT_USER_OR_DEVICE, (1, "bob@example.co"), (2, "bob@example.com")),
        [True, False],
        "differs",
    ),
    ("prefix type never accepted", ("user_id", "user_1"), result(PREFIX, (1, "user_12")), [False], "prefix"),
    (
        "prefix type rejected even when user_id looks equal",
        ("user_id", "same"),
        result(PREFIX, (1, "same")),
        [False],
        "prefix",
    ),
    ("email searched as user_id", ("email", "a@b.co"), result(EXACT_USER_OR_DEVICE, (1, "a@b.co")), [True], "exactly"),
    ("user_id is case-sensitive", ("user_id", "Alice"), result(EXACT_USER_OR_DEVICE, (1, "alice")), [False], "differs"),
    (
        "numeric user_id query answered by an Amplitude ID match is someone else",
        ("user_id", "945087558021"),
        result(EXACT_AMPLITUDE_ID, (945087558021, "alice@example.com")),
        [False],
        "differs",
    ),
    ("amplitude ID equal", ("amplitude_id", "42"), result(EXACT_AMPLITUDE_ID, (42, "x")), [True], "equals"),
    (
        "merged amplitude ID resolves to its canonical user, pending confirmation",
        ("amplitude_id", "42"),
        result(EXACT_AMPLITUDE_ID, (77, "x")),
        [True],
        "pending confirmation",
    ),
    (
        "amplitude ID query matching a user whose user_id is that number",
        ("amplitude_id", "42"),
        result(EXACT_USER_OR_DEVICE, (77, "42")),
        [False],
        "different user",
    ),
    (
        "device ID exact, anonymous user",
        ("device_id", "DEV-1"),
        result(EXACT_USER_OR_DEVICE, (5, None)),
        [True],
        "pending confirmation",
    ),
    (
        "device ID equal to somebody's user_id is not a device match",
        ("device_id", "DEV-1"),
        result(EXACT_USER_OR_DEVICE, (5, "DEV-1")),
        [False],
        "not an exact device_id",
    ),
    ("device ID prefix type", ("device_id", "DEV"), result(PREFIX, (5, "DEV-1")), [False], "prefix"),
    ("nomatch", ("user_id", "nobody"), result("nomatch"), [], ""),
]


@pytest.mark.parametrize(
    ("query", "search", "accepted", "reason"), [c[1:] for c in JUDGE_TABLE], ids=[c[0] for c in JUDGE_TABLE]
)
def test_judge(query: tuple[str, str], search: UserSearchResult, accepted: list[bool], reason: str) -> None:
    candidates = judge(term(*query), search)
    assert [c.accepted for c in candidates] == accepted
    assert [c.amplitude_id for c in candidates] == [m.amplitude_id for m in search.matches]
    assert not candidates or any(reason in c.reason for c in candidates)
    for cand in candidates:
        assert cand.reason.startswith("accepted" if cand.accepted else "rejected")


user_ids = st.text(alphabet="ab1@.", min_size=1, max_size=8)


@given(
    query=user_ids,
    others=st.lists(user_ids, max_size=6),
    match_type=st.sampled_from([EXACT_USER_OR_DEVICE, PREFIX, "", "x"]),
)
def test_user_id_query_accepts_only_the_exact_user_id(query: str, others: list[str], match_type: str) -> None:
    search = result(match_type, *[(i + 1, u) for i, u in enumerate(others)])
    for cand in judge(term("user_id", query), search):
        if cand.accepted:
            assert cand.user_id == query and match_type != PREFIX


@given(query=user_ids, others=st.lists(st.one_of(st.none(), user_ids), max_size=6))
def test_prefix_results_are_never_accepted_whatever_the_kind(query: str, others: list[str | None]) -> None:
    search = result(PREFIX, *[(i + 1, u) for i, u in enumerate(others)])
    for kind in (IdentifierKind.USER_ID, IdentifierKind.EMAIL, IdentifierKind.DEVICE_ID):
        [t] = search_terms([Identifier(kind=kind, value=query)])
        assert not any(c.accepted for c in judge(t, search))


# --- confirm ------------------------------------------------------------------------------------


def user_data(**fields: Any) -> UserData:
    return UserData.model_validate(fields)


CONFIRM_TABLE: list[tuple[str, tuple[str, str], int, UserData, bool]] = [
    ("merged ID among merged_amplitude_ids", ("amplitude_id", "11"), 99,
     user_data(canonical_amplitude_id=99, merged_amplitude_ids=[11, 22]), True),
    ("amplitude ID not this user's", ("amplitude_id", "33"), 99,
     user_data(canonical_amplitude_id=99, merged_amplitude_ids=[11, 22]), False),
    ("device among the user's devices", ("device_id", "D1"), 5, user_data(device_ids=["D0", "D1"]), True),
    ("device not among the user's devices", ("device_id", "D1"), 5, user_data(device_ids=["D0"]), False),
    ("no devices listed: not proven, not accepted", ("device_id", "D1"), 5, user_data(device_ids=[]), False),
    ("user_id still the same", ("user_id", "u"), 5, user_data(user_id="u"), True),
    ("user_id changed since the search", ("user_id", "u"), 5, user_data(user_id="v"), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "candidate", "data", "ok"), [c[1:] for c in CONFIRM_TABLE], ids=[c[0] for c in CONFIRM_TABLE]
)
def test_confirm(query: tuple[str, str], candidate: int, data: UserData, ok: bool) -> None:
    accepted, reason = confirm(term(*query), candidate, data)
    assert accepted is ok
    assert reason.startswith("confirmed" if ok else "rejected")


# --- subjects -----------------------------------------------------------------------------------


def test_build_subject_follows_merged_ids_from_a_merged_match() -> None:
    data = user_data(canonical_amplitude_id=99, merged_amplitude_ids=[11, 99], device_ids=["D"], user_id="u")
    s = build_subject("web", 11, data, [ident("amplitude_id", "11"), ident("amplitude_id", "11")])
    assert (s.amplitude_id, s.merged_amplitude_ids, s.user_id, s.device_ids) == (99, [11], "u", ["D"])
    assert s.all_amplitude_ids == [99, 11]
    assert s.matched_by == [ident("amplitude_id", "11")]


def test_merge_subjects_collapses_overlapping_ids_in_one_project_only() -> None:
    a = Subject(project="web", amplitude_id=1, merged_amplitude_ids=[2], matched_by=[ident("user_id", "u")])
    b = Subject(project="web", amplitude_id=2, matched_by=[ident("amplitude_id", "2")], device_ids=["D"])
    c = Subject(project="mobile", amplitude_id=1)
    merged = merge_subjects([a, b, c])
    assert [(s.project, s.amplitude_id) for s in merged] == [("web", 1), ("mobile", 1)]
    assert merged[0].merged_amplitude_ids == [2]
    assert merged[0].matched_by == [ident("user_id", "u"), ident("amplitude_id", "2")]
    assert merged[0].device_ids == ["D"]


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "no-at-sign", "malformed email"),
        ("email", "a@b", "malformed email"),
        ("amplitude_id", "12a", "positive integer"),
        ("amplitude_id", "0", "positive integer"),
        ("amplitude_id", str(2**63), "positive integer"),
        ("device_id", "  ", "empty"),
        ("phone", "1", "unknown identifier kind"),
    ],
)
def test_bad_identifiers_are_refused_without_echoing_the_value(kind: str, value: str, message: str) -> None:
    from amplitude_dsr.errors import UsageError

    with pytest.raises(UsageError) as info:
        Identifier.parse(kind, value)
    assert message in str(info.value)
    if value.strip() and kind != "phone":
        assert value not in str(info.value)
