"""The pure parts of giving up on an exhausted budget: when the foreground stops waiting, the one
line it prints, and the deferral surviving a workflow checkpoint (the end-to-end behaviour is in
``tests/e2e/test_budget_wait_cli.py``)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

from amplitude_dsr.cli.requests import still_queued_message
from amplitude_dsr.dsr.api import gives_up
from amplitude_dsr.dsr.steps import budget_wait_value
from amplitude_dsr.errors import BudgetExhausted, DeferredError

NOW = datetime(2026, 11, 28, 15, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("waited", "resume_in", "max_wait", "expected"),
    [
        (0.0, 3600.0, 300.0, True),  # an hour-long pause: give up at once
        (0.0, 299.0, 300.0, False),  # a short one: wait it out
        (0.0, 300.0, 300.0, False),  # exactly the limit is still within it
        (200.0, 101.0, 300.0, True),  # waits add up: 200 s already, 101 s more is too much
        (200.0, -5.0, 300.0, False),  # a wait that is over counts as zero
        (301.0, 0.0, 300.0, True),  # already waited longer than allowed
    ],
)
def test_gives_up_when_budget_waits_add_up_past_the_limit(
    waited: float, resume_in: float, max_wait: float, expected: bool
) -> None:
    assert gives_up(waited, NOW + timedelta(seconds=resume_in), max_wait, NOW) is expected


def test_the_message_names_the_pool_the_time_in_utc_and_what_to_run() -> None:
    cet = timezone(timedelta(hours=1))
    exc = BudgetExhausted("x", resume_at=datetime(2026, 11, 28, 17, 30, 5, tzinfo=cet), pool="user")
    message = still_queued_message("dsr_1", exc)
    assert message == (
        "the user rate budget (User Search and User Activity) is exhausted, resume at 2026-11-28 16:30:05 UTC; "
        "request dsr_1 stays queued and finishes when a worker runs (`amplitude-dsr worker`); "
        "follow it with `amplitude-dsr status dsr_1`"
    )
    assert "\n" not in message


def test_an_unknown_pool_is_named_generically() -> None:
    exc = BudgetExhausted("x", resume_at=NOW, pool="")
    assert still_queued_message("dsr_1", exc).startswith("the rate budget is exhausted, resume at 2026-11-28")


def test_the_published_wait_holds_only_the_pool_and_the_time() -> None:
    exc = BudgetExhausted("the user budget has no room", resume_at=NOW, pool="user")
    assert budget_wait_value(exc) == {"pool": "user", "resume_at": "2026-11-28T15:00:00+00:00"}


@pytest.mark.parametrize("cls", [DeferredError, BudgetExhausted])
def test_a_deferral_survives_a_checkpoint(cls: type[DeferredError]) -> None:
    """DBOS pickles a step's exception and raises it again when a recovered workflow replays the
    step; ``steps.call`` must still see a deferral with its pool and time, or the recovered
    request fails."""
    exc = cls("the user budget has no room", resume_at=NOW, pool="user")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls
    assert (again.resume_at, again.pool, str(again)) == (NOW, "user", str(exc))
