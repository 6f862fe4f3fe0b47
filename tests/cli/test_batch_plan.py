"""The pure parts of ``batch``: row validation and grouping, and the rate-budget ETA."""

from __future__ import annotations

import pytest

from amplitude_dsr.cli.batch import eta_seconds, format_eta, parse_rows


def _rows(*lines: str) -> list[tuple[int, list[str]]]:
    return [(n, line.split(",")) for n, line in enumerate(lines, start=1)]


def test_rows_with_one_subject_and_type_form_one_request() -> None:
    parsed = parse_rows(
        _rows(
            "request,kind,value,subject",
            "access,email,a@example.com,s1",
            "deletion,user_id,u-1,s1",
            "Access,User-ID,u-1,s1",
            "access,email,a@example.com,s1",  # the same identifier again: kept once
            "deletion,device_id,d-1",
            "deletion,device_id,d-1,",  # the same unlabelled row again: one request
            "# a comment",
            ",,,",
        )
    )
    assert parsed.errors == []
    summary = [(p.kind, [i.value for i in p.identifiers], p.lines, p.subject) for p in parsed.requests]
    assert summary == [
        ("access", ["a@example.com", "u-1"], [2, 4, 5], "s1"),
        ("deletion", ["u-1"], [3], "s1"),
        ("deletion", ["d-1"], [6, 7], None),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("access,email,nope", "malformed email address"),
        ("access,amplitude_id,0", "an Amplitude ID must be a positive integer"),
        ("access,user_id,", "empty user_id"),
        ("remove,user_id,x", "unknown request type (expected access or deletion)"),
        ("access,phone,x", "unknown identifier kind (expected email, user_id, amplitude_id, device_id)"),
        ("access,user_id,x,s,extra", "expected 3 or 4 columns (request,kind,value[,subject]), found 5"),
    ],
)
def test_bad_rows_name_the_line_and_the_problem_only(line: str, message: str) -> None:
    parsed = parse_rows(_rows("request,kind,value", "access,user_id,fine", line))
    assert [(e.line, e.message) for e in parsed.errors] == [(3, message)]
    assert len(parsed.requests) == 1


def test_a_missing_header_is_reported() -> None:
    parsed = parse_rows(_rows("access,user_id,x"))
    assert [e.line for e in parsed.errors] == [1] and parsed.requests == []


@pytest.mark.parametrize(
    ("unresolved", "pending_ids", "fraction", "scale", "expected"),
    [
        (0, 0, 0.75, 1.0, 0.0),
        (1, 0, 0.75, 1.0, 2 / (360 * 0.75 / 3600)),  # two user-pool calls at 270/hour: 26.7 s
        (135, 0, 0.75, 1.0, 3600.0),  # 270 calls: the whole hour
        (0, 1, 0.75, 1.0, 1 / 0.75),  # one POST at 0.75/s
        (0, 250, 1.0, 1.0, 3.0),  # 100 IDs per POST: three POSTs
        (135, 0, 0.75, 1000.0, 3.6),  # the emulator's scaled limits
    ],
)
def test_eta_follows_the_rate_budgets(
    unresolved: int, pending_ids: int, fraction: float, scale: float, expected: float
) -> None:
    assert eta_seconds(unresolved, pending_ids, budget_fraction=fraction, rate_scale=scale) == pytest.approx(expected)


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "<1s"), (42, "42s"), (600, "10m"), (7200, "2.0h")])
def test_eta_text(seconds: float, text: str) -> None:
    assert format_eta(seconds) == text
