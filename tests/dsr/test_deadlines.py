"""Deadline extensions as a table: what GDPR and CCPA allow, decided from the stored values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from amplitude_dsr.dsr.deadlines import extended_days, extension_refusal, original_deadline

RECEIVED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GDPR_DUE = RECEIVED + timedelta(days=30)
CCPA_DUE = RECEIVED + timedelta(days=45)
NOW = RECEIVED + timedelta(days=10)


@pytest.mark.parametrize(
    ("regulation", "deadline", "days", "now", "final", "refused"),
    [
        ("gdpr", GDPR_DUE, 60, NOW, False, None),
        ("gdpr", GDPR_DUE, 61, NOW, False, "at most 60 days beyond the original deadline in all; 60 days left"),
        ("gdpr", GDPR_DUE + timedelta(days=59), 1, NOW, False, None),
        ("gdpr", GDPR_DUE + timedelta(days=59), 2, NOW, False, "1 day left"),
        ("ccpa", CCPA_DUE, 45, NOW, False, None),
        ("ccpa", CCPA_DUE, 46, NOW, False, "CCPA allows at most 45 days"),
        ("gdpr", GDPR_DUE, 0, NOW, False, "at least one day"),
        ("gdpr", GDPR_DUE, 5, GDPR_DUE + timedelta(seconds=1), False, "the deadline has passed"),
        ("gdpr", GDPR_DUE, 5, NOW, True, "already answered"),
    ],
)
def test_extension_rules(
    regulation: str, deadline: datetime, days: int, now: datetime, final: bool, refused: str | None
) -> None:
    reason = extension_refusal(
        regulation=regulation, created_at=RECEIVED, deadline=deadline, days=days, now=now, final=final
    )
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_extended_days_counts_from_the_original_deadline() -> None:
    assert original_deadline("ccpa", RECEIVED) == CCPA_DUE
    assert extended_days("gdpr", RECEIVED, GDPR_DUE) == 0
    assert extended_days("gdpr", RECEIVED, GDPR_DUE + timedelta(days=12)) == 12
