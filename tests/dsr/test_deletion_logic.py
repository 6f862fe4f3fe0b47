"""The pure decisions of the deletion flow, as tables (and properties where natural): when to
flush, how a batch is packed, what reconciliation concludes, job status, cancel rules and what
a verification search proves."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.amplitude.models import DeletionEntry, DeletionJob
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr.model import Candidate
from amplitude_dsr.store.repo import pick_batch


def job(day: str, status: str, *ids: int, requested: str = "2024-06-01", app: int | None = None) -> DeletionJob:
    entries = [DeletionEntry(amplitude_id=i, requested_on_day=requested) for i in ids]
    return DeletionJob(day=day, status=status, amplitude_ids=entries, app=app)


def listed(day: str, status: str, *ids: int, requested: str = "2024-06-01", app: int | None = None) -> ListedJob:
    """The same job as a listing holds it."""
    return ListedJob.from_model(job(day, status, *ids, requested=requested, app=app))


@pytest.mark.parametrize(
    ("age", "resolving", "linger", "floor"),
    [
        (0.0, 0, 300.0, 1),  # nothing else resolving: a partial batch goes now
        (0.0, 3, 300.0, 100),  # others still resolving: only a full batch
        (299.9, 3, 300.0, 100),
        (300.0, 3, 300.0, 1),  # waited long enough
        (0.0, 0, 0.0, 1),
    ],
)
def test_flush_floor(age: float, resolving: int, linger: float, floor: int) -> None:
    assert logic.flush_floor(age, resolving, linger) == floor


@pytest.mark.parametrize(
    ("queued", "age", "resolving", "flush"),
    [(0, 999.0, 0, False), (1, 0.0, 0, True), (99, 0.0, 1, False), (100, 0.0, 1, True), (250, 0.0, 9, True)],
)
def test_should_flush(queued: int, age: float, resolving: int, flush: bool) -> None:
    assert logic.should_flush(queued, age, resolving, 300.0) is flush


queues = st.lists(st.integers(min_value=1, max_value=400), max_size=500)


@given(queues, st.integers(min_value=1, max_value=120))
def test_pick_batch_takes_the_first_100_distinct_ids_and_every_item_holding_them(ids: list[int], floor: int) -> None:
    rows = list(enumerate(ids))
    picked, items = pick_batch(rows, floor)
    distinct = list(dict.fromkeys(ids))
    if len(distinct) < floor or not distinct:
        assert (picked, items) == ([], [])
        return
    assert picked == distinct[:100]
    assert items == [item for item, aid in rows if aid in set(picked)]


@given(queues)
def test_packing_a_queue_to_the_end_posts_each_id_once_in_full_batches(ids: list[int]) -> None:
    rows = list(enumerate(ids))
    posts: list[list[int]] = []
    while rows:
        picked, items = pick_batch(rows)
        posts.append(picked)
        rows = [r for r in rows if r[0] not in set(items)]
    flat = [aid for p in posts for aid in p]
    assert sorted(flat) == sorted(set(ids))  # every ID exactly once
    assert all(len(p) == 100 for p in posts[:-1]) and all(0 < len(p) <= 100 for p in posts)
    assert len(posts) == -(-len(set(ids)) // 100)  # ceil: 250 distinct IDs are 3 POSTs


@pytest.mark.parametrize(
    ("jobs", "posted_on", "found", "missing"),
    [
        ([], "2024-06-01", {}, [1, 2]),
        ([listed("2024-06-11", "staging", 1)], "2024-06-01", {1: ("2024-06-11", "staging")}, [2]),
        (
            [listed("2024-06-11", "staging", 1, 2)],
            "2024-06-01",
            {1: ("2024-06-11", "staging"), 2: ("2024-06-11", "staging")},
            [],
        ),
        # requested long before this POST: an older deletion of the same ID, not ours
        ([listed("2024-05-20", "submitted", 1, requested="2024-05-10")], "2024-06-01", {}, [1, 2]),
        # one day of clock skew is tolerated
        (
            [listed("2024-06-10", "staging", 2, requested="2024-05-31")],
            "2024-06-01",
            {2: ("2024-06-10", "staging")},
            [1],
        ),
        ([listed("2024-06-11", "staging", 3)], "2024-06-01", {}, [1, 2]),  # someone else's ID
    ],
)
def test_reconcile(
    jobs: list[ListedJob], posted_on: str, found: dict[int, tuple[str, str]], missing: list[int]
) -> None:
    assert logic.reconcile([1, 2], jobs, date.fromisoformat(posted_on)) == (found, missing)


@given(
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30, unique=True),
    st.lists(st.integers(min_value=1, max_value=50), max_size=30, unique=True),
)
def test_reconcile_partitions_the_posted_ids(posted: list[int], held: list[int]) -> None:
    found, missing = logic.reconcile(posted, [listed("2024-06-11", "staging", *held)], date(2024, 6, 1))
    assert set(found) | set(missing) == set(posted) and not set(found) & set(missing)
    assert set(found) == set(posted) & set(held)  # re-queued only what Amplitude does not have
    assert missing == [i for i in posted if i not in held]  # queue order kept


def test_windows_stay_inside_six_months() -> None:
    start, end = logic.reconcile_window(date(2024, 6, 1))
    assert start < date(2024, 6, 1) < end and (end - start).days < 183
    assert logic.job_window("2024-06-11") == (date(2024, 6, 10), date(2024, 6, 12))


def test_receipt_days_and_job_status() -> None:
    jobs = [job("2024-06-11", "staging", 1, 2, app=7), job("2024-06-12", "staging", 3, app=8)]
    assert logic.receipt_days(jobs) == {
        1: ("2024-06-11", "staging"),
        2: ("2024-06-11", "staging"),
        3: ("2024-06-12", "staging"),
    }
    listing = [listed("2024-06-11", "staging", 1, 2, app=7), listed("2024-06-12", "staging", 3, app=8)]
    assert logic.job_status(listing, "2024-06-12", [3, 9]) is listing[1]
    assert logic.job_status(listing, "2024-06-12", [1]) is None  # right day, not our IDs
    assert logic.job_status(listing, "2024-06-13", [3]) is None


@pytest.mark.parametrize(
    ("status", "day", "today", "refusal"),
    [
        ("staging", "2024-06-11", "2024-06-07", None),  # four days before: still allowed
        ("staging", "2024-06-11", "2024-06-08", "more than 3 days before"),  # exactly three: frozen
        ("staging", "2024-06-11", "2024-06-10", "more than 3 days before"),
        ("submitted", "2024-06-11", "2024-06-01", "already 'submitted'"),
        ("done", "2024-06-11", "2024-06-30", "already 'done'"),
        (None, "2024-06-11", "2024-06-01", None),  # not listed (yet): the DELETE decides
    ],
)
def test_cancel_refusal(status: str | None, day: str, today: str, refusal: str | None) -> None:
    reason = logic.cancel_refusal(status, day, date.fromisoformat(today))
    assert (reason is None) if refusal is None else (reason is not None and refusal in reason)


def cand(aid: int) -> Candidate:
    return Candidate(amplitude_id=aid, user_id="u", accepted=True, reason="exact")


@pytest.mark.parametrize(
    ("found", "deleted", "outcome"),
    [
        ([], [1], "verified"),
        ([cand(9)], [1], "recollected"),  # a new Amplitude ID for the same identifier
        ([cand(1)], [1], "still_present"),  # the deleted ID itself is still searchable
        ([cand(1), cand(9)], [1], "still_present"),
    ],
)
def test_verification_outcome(found: list[Candidate], deleted: list[int], outcome: str) -> None:
    assert logic.verification_outcome(found, deleted)[0] == outcome


@pytest.mark.parametrize(
    ("outcomes", "final"),
    [
        ([], "verified"),
        (["verified", "verified"], "verified"),
        (["verified", "recollected"], "recollected"),
        (["recollected", "still_present"], "still_present"),
    ],
)
def test_request_outcome_is_never_a_silent_success(outcomes: list[str], final: str) -> None:
    assert logic.request_outcome(outcomes) == final  # type: ignore[arg-type]


@pytest.mark.parametrize(("poll", "tick"), [(0.01, 0.1), (0.2, 0.2), (1.0, 1.0), (3600.0, 1.0)])
def test_flush_tick(poll: float, tick: float) -> None:
    assert logic.flush_tick(poll) == tick


@given(st.dates(min_value=date(2001, 1, 1), max_value=date(2090, 1, 1)))
def test_every_narrow_job_window_lies_inside_one_shared_listing_window(day: date) -> None:
    start, end = logic.job_window(day.isoformat())
    shared = logic.shared_window(start, end)
    assert shared is not None
    first, last = shared
    assert first <= start and end <= last
    assert (last - first).days + 1 <= 180  # inside Amplitude's six-month listing limit


def test_jobs_of_the_same_three_months_share_one_listing_window() -> None:
    windows = {logic.shared_window(*logic.job_window(f"2026-12-{d:02d}")) for d in range(3, 28)}
    assert len(windows) <= 2  # at most one bucket boundary falls inside a month
    assert logic.shared_window(date(2026, 1, 1), date(2026, 12, 31)) is None  # too wide: list it as asked
