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
    NOMATCH,
    PREFIX,
    SearchTerm,
    build_subject,
    confirm,
    covers,
    is_ambiguous,
    judge,
    merge_subjects,
    prefix_probe,
    probe_outcome,
    search_terms,
)
from amplitude_dsr.dsr.model import Candidate, Identifier, IdentifierKind, Resolution, SearchAttempt, Subject


def ident(kind: str, value: str) -> Identifier:
    return Identifier.parse(kind, value)


def term(kind: str, value: str) -> SearchTerm:
    return search_terms([ident(kind, value)])[0]


def result(match_type: str, *matches: tuple[int, str | None]) -> UserSearchResult:
    return UserSearchResult.model_validate(
        {"type": match_type, "matches": [{"amplitude_id": a, "user_id": u} for a, u in matches]}
    )


# --- search_terms -------------------------------------------------------------------------------


def test_email_is_searched_as_a_user_id_as_given_and_lower_cased() -> None:
    email = ident("email", "Jane@Example.com")
    terms = search_terms([email])
    assert [(t.term, t.term_kind, t.via) for t in terms] == [
        ("Jane@Example.com", IdentifierKind.USER_ID, "identifier"),
        ("jane@example.com", IdentifierKind.USER_ID, "identifier"),
    ]
    assert all(t.identifier == email for t in terms)


def test_lower_case_email_is_one_search() -> None:
    [t] = search_terms([ident("email", "jane@example.com")])
    assert (t.term, t.term_kind) == ("jane@example.com", IdentifierKind.USER_ID)


@pytest.mark.parametrize("kind", ["user_id", "device_id"])
def test_other_identifiers_are_not_lower_cased(kind: str) -> None:
    assert [t.term for t in search_terms([ident(kind, "Jane@Example.com")])] == ["Jane@Example.com"]


@given(st.text(alphabet="aAbB1@.", min_size=1, max_size=8))
def test_email_forms_are_the_given_one_and_its_lower_case(value: str) -> None:
    terms = search_terms([Identifier(kind=IdentifierKind.EMAIL, value=value)])
    assert [t.term for t in terms] == list(dict.fromkeys([value, value.lower()]))


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
        "device ID equal to somebody's user_id: that user may own the device, its devices decide",
        ("device_id", "DEV-1"),
        result(EXACT_USER_OR_DEVICE, (5, "DEV-1")),
        [True],
        "pending confirmation",
    ),
    (
        "numeric device ID answered with an Amplitude ID match is someone else",
        ("device_id", "945087558021"),
        result(EXACT_AMPLITUDE_ID, (945087558021, "alice@example.com")),
        [False],
        "took the query",
    ),
    (
        "amplitude ID query: the ID's user accepted, a user whose user_id is the number is not fetched",
        ("amplitude_id", "42"),
        result(EXACT_AMPLITUDE_ID, (42, "x"), (77, "42")),
        [True, False],
        "user_id is this number",
    ),
    (
        "the as-given search of an email accepts only that form (its lower-cased search is another term)",
        ("email", "A@B.co"),
        result(EXACT_USER_OR_DEVICE, (1, "a@b.co")),
        [False],
        "differs",
    ),
    ("device ID prefix type", ("device_id", "DEV"), result(PREFIX, (5, "DEV-1")), [False], "prefix"),
    ("nomatch", ("user_id", "nobody"), result("nomatch"), [], ""),
]


@pytest.mark.parametrize(
    ("query", "search", "accepted", "reason"), [c[1:] for c in JUDGE_TABLE], ids=[c[0] for c in JUDGE_TABLE]
)
def test_judge(query: tuple[str, str], search: UserSearchResult, accepted: list[bool], reason: str) -> None:
    candidates = judge(term(*query), search)  # the first term: for an email, the form as given
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


def test_lower_cased_search_of_an_email_accepts_the_lower_case_user_id() -> None:
    given, lower = search_terms([ident("email", "A@B.co")])
    search = result(EXACT_USER_OR_DEVICE, (1, "a@b.co"), (2, "a@b.com"))
    assert [c.accepted for c in judge(given, search)] == [False, False]
    assert [c.accepted for c in judge(lower, search)] == [True, False]


@given(value=st.text(alphabet="aAb@.", min_size=1, max_size=6), others=st.lists(user_ids, max_size=6))
def test_an_email_accepts_only_a_user_id_equal_to_one_of_its_two_forms(value: str, others: list[str]) -> None:
    search = result(EXACT_USER_OR_DEVICE, *[(i + 1, u) for i, u in enumerate([*others, value.lower()])])
    for t in search_terms([Identifier(kind=IdentifierKind.EMAIL, value=value)]):
        for cand in judge(t, search):
            if cand.accepted:
                assert cand.user_id in (value, value.lower())


# --- ambiguous answers and the prefix probe ------------------------------------------------------


def probe(value: str) -> SearchTerm:
    made = prefix_probe(term("user_id", value))
    assert made is not None
    return made


PROBE_TABLE: list[tuple[str, tuple[str, str], tuple[str, str | None, IdentifierKind | None] | None]] = [
    ("user ID: without its last character", ("user_id", "945087558021"), ("94508755802", "945087558021", None)),
    ("email searched as a user ID", ("email", "a@b.co"), ("a@b.c", "a@b.co", None)),
    ("one character: nothing to probe", ("user_id", "7"), None),
    ("device IDs have no prefix search", ("device_id", "945087558021"), None),
    ("Amplitude IDs have no prefix search", ("amplitude_id", "945087558021"), None),
]


@pytest.mark.parametrize(("query", "expected"), [c[1:] for c in PROBE_TABLE], ids=[c[0] for c in PROBE_TABLE])
def test_prefix_probe(query: tuple[str, str], expected: tuple[str, str, None] | None) -> None:
    made = prefix_probe(term(*query))
    if expected is None:
        assert made is None
        return
    assert made is not None
    assert (made.term, made.probe_for, made.wanted) == (expected[0], expected[1], expected[1])
    assert made.term_kind is IdentifierKind.USER_ID and prefix_probe(made) is None  # never a probe of a probe


PROBE_JUDGE_TABLE: list[tuple[str, UserSearchResult, list[bool]]] = [
    ("prefix answer: only the exact user_id", result(PREFIX, (1, "9450875580210"), (2, "945087558021")), [False, True]),
    ("prefix answer without it", result(PREFIX, (1, "9450875580219")), [False]),
    ("the prefix is itself an Amplitude ID", result(EXACT_AMPLITUDE_ID, (94508755802, "bob")), [False]),
    ("exact answer", result(EXACT_USER_OR_DEVICE, (1, "94508755802"), (2, "945087558021")), [False, True]),
]


@pytest.mark.parametrize(
    ("search", "accepted"), [c[1:] for c in PROBE_JUDGE_TABLE], ids=[c[0] for c in PROBE_JUDGE_TABLE]
)
def test_judge_a_probe(search: UserSearchResult, accepted: list[bool]) -> None:
    candidates = judge(probe("945087558021"), search)
    assert [c.accepted for c in candidates] == accepted
    assert all("pending confirmation" in c.reason for c in candidates if c.accepted)


@given(query=st.text(alphabet="ab1", min_size=2, max_size=6), others=st.lists(user_ids, max_size=6))
def test_a_probe_accepts_only_the_full_user_id_whatever_the_type(query: str, others: list[str]) -> None:
    for match_type in (PREFIX, EXACT_USER_OR_DEVICE, EXACT_AMPLITUDE_ID):
        search = result(match_type, *[(i + 1, u) for i, u in enumerate([*others, query])])
        for cand in judge(probe(query), search):
            assert cand.accepted is (cand.user_id == query)


def cands(*accepted: bool) -> list[Candidate]:
    return [Candidate(amplitude_id=i + 1, accepted=a, reason="x") for i, a in enumerate(accepted)]


AMBIGUOUS_TABLE: list[tuple[str, SearchTerm, str, list[Candidate], bool]] = [
    ("user ID taken for somebody's Amplitude ID", term("user_id", "42"), EXACT_AMPLITUDE_ID, cands(False), True),
    ("device ID taken for somebody's Amplitude ID", term("device_id", "42"), EXACT_AMPLITUDE_ID, cands(False), True),
    ("Amplitude ID taken for somebody's user ID", term("amplitude_id", "42"), EXACT_USER_OR_DEVICE, cands(False), True),
    ("user ID found in the same answer", term("user_id", "42"), EXACT_AMPLITUDE_ID, cands(False, True), False),
    ("Amplitude ID found", term("amplitude_id", "42"), EXACT_AMPLITUDE_ID, cands(True), False),
    ("merged Amplitude ID not confirmed: not ambiguous", term("amplitude_id", "42"), EXACT_AMPLITUDE_ID, cands(False),
     False),
    ("nomatch is an answer", term("user_id", "42"), NOMATCH, [], False),
    ("only prefix matches is an answer", term("user_id", "42"), PREFIX, cands(False), False),
    ("exact answer without the user ID", term("user_id", "42"), EXACT_USER_OR_DEVICE, cands(False), False),
    ("a probe is never itself ambiguous", probe("420"), EXACT_AMPLITUDE_ID, cands(False), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("t", "match_type", "candidates", "expected"), [c[1:] for c in AMBIGUOUS_TABLE], ids=[c[0] for c in AMBIGUOUS_TABLE]
)
def test_is_ambiguous(t: SearchTerm, match_type: str, candidates: list[Candidate], expected: bool) -> None:
    assert is_ambiguous(t, match_type, candidates) is expected


@pytest.mark.parametrize(
    ("match_type", "candidates", "expected"),
    [(PREFIX, cands(False, True), "found"), (NOMATCH, [], "absent"), (PREFIX, cands(False), "unknown"),
     (EXACT_AMPLITUDE_ID, cands(False), "unknown")],
)  # fmt: skip
def test_probe_outcome(match_type: str, candidates: list[Candidate], expected: str) -> None:
    assert probe_outcome(match_type, candidates) == expected


FOUND = Subject(project="web", amplitude_id=99, merged_amplitude_ids=[11], user_id="42", device_ids=["D1"])
COVERS_TABLE: list[tuple[str, SearchTerm, bool]] = [
    ("its user_id", term("user_id", "42"), True),
    ("another user_id", term("user_id", "43"), False),
    ("a probe for its user_id", probe("42"), True),
    ("one of its devices", term("device_id", "D1"), True),
    ("a device it does not have", term("device_id", "42"), False),
    ("its merged Amplitude ID", term("amplitude_id", "11"), True),
    ("its user_id given as an Amplitude ID", term("amplitude_id", "42"), False),
]


@pytest.mark.parametrize(("t", "expected"), [c[1:] for c in COVERS_TABLE], ids=[c[0] for c in COVERS_TABLE])
def test_covers(t: SearchTerm, expected: bool) -> None:
    assert covers(t, FOUND) is expected


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
    ("data", "ok"),
    [(user_data(user_id="945087558021"), True), (user_data(user_id="94508755802"), False), (user_data(), False)],
    ids=["the full user ID", "the probe's prefix", "no user_id in the summary"],
)
def test_confirm_a_probe(data: UserData, ok: bool) -> None:
    accepted, reason = confirm(probe("945087558021"), 5, data)
    assert accepted is ok and reason.startswith("confirmed" if ok else "rejected")


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


# --- the resolution record -----------------------------------------------------------------------


def attempt(identifier: Identifier, project: str, *, accepted: bool = False, ambiguous: bool = False) -> SearchAttempt:
    return SearchAttempt(
        identifier=identifier, project=project, term_kind="user_id", term=identifier.value,
        match_type=EXACT_AMPLITUDE_ID if ambiguous else EXACT_USER_OR_DEVICE,
        candidates=[Candidate(amplitude_id=1, accepted=accepted, reason="x")], ambiguous=ambiguous,
    )  # fmt: skip


def test_resolution_says_what_is_unresolved_and_what_is_ambiguous() -> None:
    found, missing, hidden = ident("user_id", "u-1"), ident("user_id", "u-2"), ident("user_id", "945087558021")
    res = Resolution(
        attempts=[
            attempt(found, "web", accepted=True), attempt(missing, "web"), attempt(hidden, "web", ambiguous=True),
            attempt(found, "mobile"), attempt(hidden, "mobile", ambiguous=True),
        ],
        subjects=[Subject(project="web", amplitude_id=1, matched_by=[found])],
    )  # fmt: skip
    assert res.unresolved() == [missing, hidden]
    assert [(t.identifier, t.project, t.submittable_user_id) for t in res.ambiguous()] == [
        (hidden, "web", "945087558021"),
        (hidden, "mobile", "945087558021"),
    ]
    details = {d.identifier: d for d in res.unresolved_details()}
    assert set(details) == {missing, hidden}
    assert details[hidden].ambiguous and details[hidden].projects == ["web", "mobile"]
    assert not details[missing].ambiguous and details[missing].projects == []
    for d in details.values():
        assert d.identifier.value not in d.reason


def test_ambiguous_device_id_is_not_submittable_as_a_user_id() -> None:
    device = ident("device_id", "945087558021")
    a = attempt(device, "web", ambiguous=True).model_copy(update={"term_kind": "device_id"})
    [t] = Resolution(attempts=[a]).ambiguous()
    assert t.submittable_user_id is None


def test_a_mapped_user_id_stays_ambiguous_although_its_email_found_someone() -> None:
    email = ident("email", "jane@example.com")
    res = Resolution(
        attempts=[attempt(email, "web", accepted=True), attempt(email, "web", ambiguous=True)],
        subjects=[Subject(project="web", amplitude_id=1, matched_by=[email])],
    )
    assert res.unresolved() == []
    assert [d.ambiguous for d in res.unresolved_details()] == [True]


def test_old_records_without_the_new_fields_still_load() -> None:
    raw = attempt(ident("user_id", "u"), "web").model_dump(mode="json")
    for key in ("probe_for", "ambiguous", "note"):
        raw.pop(key)
    loaded = SearchAttempt.model_validate(raw)
    assert (loaded.probe_for, loaded.ambiguous, loaded.note) == (None, False, None)
