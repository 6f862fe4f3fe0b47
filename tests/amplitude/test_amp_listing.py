"""Deletion job listings held compactly (``amplitude/listing.py``): the same facts as the models,
in a form whose size does not grow by a Python object per listed ID."""

from __future__ import annotations

import itertools
import json
import sys
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplitude_dsr.amplitude import listing, listing_stream
from amplitude_dsr.amplitude.listing import ListedJob, _Compactor, decode_listing, parse_listing
from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.errors import MalformedResponse

URL = "/api/2/deletions/users"


def entries(n: int, start: int = 356_000_000_000) -> list[dict[str, Any]]:
    days = ("2026-12-01", "2026-12-02", None)
    return [{"amplitude_id": start + i, "requested_on_day": days[i % 3], "requester": "dpo@corp"} for i in range(n)]


def listed(body: Any) -> list[ListedJob]:
    return parse_listing(decode_listing(json.dumps(body).encode()), URL)


def test_a_listing_of_100000_ids_is_held_in_two_arrays_and_a_few_shared_strings() -> None:
    job = {"day": "2026-12-20", "status": "staging", "amplitude_ids": entries(100_000), "app": 7}
    [found] = listed([job])
    assert (found.day, found.status, found.app, len(found)) == ("2026-12-20", "staging", 7, 100_000)
    # Structure, not timing: every ID in one array of 8-byte integers, one 4-byte index per ID
    # into the job's distinct (requested_on_day, requester) pairs: three here, whatever the size.
    assert isinstance(found.ids, array) and found.ids.typecode == "q" and found.ids.itemsize == 8
    assert len(found._origin_of) == 100_000 and found._origin_of.itemsize == 4
    assert len(found._origins) == 3
    held = sys.getsizeof(found.ids) + sys.getsizeof(found._origin_of)
    assert held < 100_000 * 13  # 12 bytes an ID and array headroom; a model per ID was ~700
    assert not hasattr(found, "__dict__")  # slots only: nothing else per job


def test_the_compact_job_says_what_the_model_says() -> None:
    body = {"day": "2026-12-20", "status": "submitted", "amplitude_ids": entries(50), "app": 3,
            "active_scrub_done_date": "2026-12-22", "invalid_ids": [12, "x"], "extra": {"k": 1}}  # fmt: skip
    [compact] = listed(body)
    model = DeletionJob.model_validate(body)
    assert compact.wire() == {**model.model_dump(mode="json", exclude={"extra"}),
                              "amplitude_ids": [{k: v for k, v in e.items() if k != "user_id"}
                                                for e in model.model_dump(mode="json")["amplitude_ids"]]}  # fmt: skip
    assert [e.amplitude_id for e in compact.amplitude_ids] == [e.amplitude_id for e in model.amplitude_ids]
    assert compact.invalid_ids == ("12", "x")
    own = {356_000_000_001, 356_000_000_002, 1}
    assert compact.holds_any(own) and compact.count_held(own) == 2 and not compact.holds_any({1})
    assert list(compact.entries({356_000_000_001})) == [(356_000_000_001, "2026-12-02", "dpo@corp")]
    assert compact.wire(only={356_000_000_001, 12})["invalid_ids"] == ["12"]


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        # numeric strings and an org-wide app given as a string go the models' way: still read
        ({"day": "2026-12-20", "status": "staging", "amplitude_ids": [{"amplitude_id": "42"}]}, [42]),
        ({"day": "2026-12-20", "status": "staging", "app": "5", "amplitude_ids": [{"amplitude_id": 1.0}]}, [1]),
        ({"day": "2026-12-20", "status": "staging"}, []),
        ([], None),
    ],
)
def test_unusual_but_valid_bodies_are_read_as_the_models_read_them(body: Any, ids: list[int] | None) -> None:
    jobs = listed(body)
    if ids is None:
        assert jobs == []
    else:
        assert [list(j.ids) for j in jobs] == [ids]


@pytest.mark.parametrize(
    "body",
    [
        {"day": "2026-12-20"},  # no status
        {"day": 20261220, "status": "staging"},
        {"day": "2026-12-20", "status": "staging", "amplitude_ids": [{"amplitude_id": "abc"}]},
        {"day": "2026-12-20", "status": "staging", "amplitude_ids": [{"requester": "x"}]},
        {"day": "2026-12-20", "status": "staging", "amplitude_ids": [{"amplitude_id": 2**70}]},
        "staging",
    ],
)
def test_malformed_listings_are_malformed_responses(body: Any) -> None:
    with pytest.raises(MalformedResponse):
        listed(body)


def test_fingerprint_tells_the_same_job_from_a_changed_one() -> None:
    a, b, c = listed([{"day": "2026-12-20", "status": s, "amplitude_ids": entries(10)}
                      for s in ("staging", "staging", "submitted")])  # fmt: skip
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def _ordinary(content: bytes) -> list[ListedJob]:
    return parse_listing(json.loads(content, object_hook=_Compactor()), URL)


def _same(a: list[ListedJob], b: list[ListedJob]) -> None:
    assert [(j.wire(), j.fingerprint(), len(j)) for j in a] == [(j.wire(), j.fingerprint(), len(j)) for j in b]


@pytest.mark.parametrize("window", [1, 7, 64, 256 * 1024])
@pytest.mark.parametrize(
    "content",
    [
        b' [ {"day":"2026-12-20" , "status":"staging","amplitude_ids":[ {"amplitude_id":1,"requester":"r\\u00e9"} ,'
        b'{"amplitude_id":22,"requested_on_day":"2026-12-01","requester":"\xc3\xa9\xe2\x82\xac","user_id":null}],'
        b'"app":3,"invalid_ids":[12,"x"],"extra":{"day":"a","status":"b"}} , {"status":"done","day":"2026-11-01"} ]\n',
        b'{"amplitude_ids":[],"day":"2026-12-20","status":"submitted","active_scrub_done_date":"2026-12-22"}',
        b"[]",
        b'{"day":"d","status":"s","amplitude_ids":[{"amplitude_id":"42"}]}',
        b' { "day" : "d" , "status" : "s" , "amplitude_ids" : [ { "amplitude_id" : 123456789012 } ] } ',
    ],
)
def test_a_listing_read_a_window_at_a_time_is_the_listing_decoded_whole(
    content: bytes, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing_stream, "WINDOW", window)
    _same(parse_listing(listing_stream_result(content), URL), _ordinary(content))


def listing_stream_result(content: bytes) -> Any:
    result = listing._streamed(listing_stream.Reader(listing_stream.windows(content)))  # the fast path itself
    assert isinstance(result, ListedJob | list)
    return result


@pytest.mark.parametrize(
    "content",
    [
        b'{"day":"d","status":"s","day":"e"}',  # duplicate key: the last wins, as json.loads says
        b'{"day":"d","status":"s","amplitude_ids":[{"amplitude_id":1,"day":"x","status":"y"}]}',
        b'{"day":"d","status":"s","invalid_ids":[{"day":"x","status":"y"}]}',
        b'{"day":"d","status":"s"} x',
        b'{"day":"d","status":"s","amplitude_ids":[{"amplitude_id":1}',
        b'\xef\xbb\xbf{"day":"d","status":"s"}',
        '{"day":"d","status":"s"}'.encode("utf-16"),
        b'{"jobs":[]}',
    ],
)
def test_a_body_of_another_shape_is_left_to_the_ordinary_decoder(content: bytes) -> None:
    with pytest.raises(Exception):
        listing._streamed(content)
    try:
        expected: Any = _ordinary(content)
    except (MalformedResponse, ValueError) as exc:
        expected = type(exc)
    try:
        got: Any = parse_listing(decode_listing(content), URL)
    except (MalformedResponse, ValueError) as exc:
        got = type(exc)
    if isinstance(expected, list):
        _same(got, expected)
    else:
        assert got is expected


_text = st.one_of(st.none(), st.text(max_size=6))
_entry = st.fixed_dictionaries(
    {"amplitude_id": st.integers(-(2**63), 2**63 - 1)},
    optional={"requested_on_day": _text, "requester": _text, "user_id": _text},
)
_job = st.fixed_dictionaries(
    {"day": st.text(max_size=10), "status": st.sampled_from(["staging", "submitted", "done"])},
    optional={"amplitude_ids": st.lists(_entry, max_size=20), "app": st.none() | st.integers(0, 99),
              "invalid_ids": st.lists(st.integers(0, 9) | st.text(max_size=3), max_size=3)},
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(_job, st.lists(_job, max_size=4)), window=st.integers(1, 40), indent=st.none() | st.integers(0, 2)
)
def test_any_plain_listing_reads_the_same_a_window_at_a_time(body: Any, window: int, indent: int | None) -> None:
    content = json.dumps(body, indent=indent, ensure_ascii=window % 2 == 0).encode()
    listing_stream.WINDOW, saved = window, listing_stream.WINDOW
    try:
        _same(parse_listing(listing_stream_result(content), URL), _ordinary(content))
    finally:
        listing_stream.WINDOW = saved


@settings(max_examples=100, deadline=None)
@given(body=st.lists(_job, max_size=3), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_a_listing_read_from_chunks_as_they_arrive_is_the_listing_decoded_whole(body: Any, cuts: list[int]) -> None:
    content = json.dumps(body, ensure_ascii=False).encode()
    bounds = sorted({0, len(content), *(c for c in cuts if c < len(content))})
    chunks = [content[a:b] for a, b in itertools.pairwise(bounds)]
    jobs, whole = listing.read_listing(iter(chunks))
    assert whole is None
    _same(parse_listing(jobs, URL), _ordinary(content))


def test_an_error_of_the_connection_while_reading_is_raised_as_it_is() -> None:
    def chunks() -> Any:
        yield b'[{"day":"d","status":"s","amplitude_ids":[{"amplitude_id":1},'
        raise ConnectionResetError("dropped")

    with pytest.raises(ConnectionResetError):
        listing.read_listing(chunks())
