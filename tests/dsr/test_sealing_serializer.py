"""The sealed serializer on its own: round trips, refuses another key's values, rotates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.dsr.sealing import SealedDataUnreadable, SealedSerializer, fingerprint, new_key

KEY, OTHER = new_key().encode(), new_key().encode()
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_what_is_sealed_unseals_to_the_same_value(value: object) -> None:
    sealer = SealedSerializer([KEY])
    assert sealer.deserialize(sealer.serialize(value)) == value


def test_the_sealed_text_does_not_hold_the_value() -> None:
    text = SealedSerializer([KEY]).serialize({"user_id": "alice@example.com", "at": datetime.now(UTC)})
    assert "alice" not in text and b"alice" not in base64.urlsafe_b64decode(text)


def test_another_key_cannot_unseal_and_says_so_without_the_value() -> None:
    text = SealedSerializer([KEY]).serialize("alice@example.com")
    with pytest.raises(SealedDataUnreadable, match="another data key") as info:
        SealedSerializer([OTHER]).deserialize(text)
    assert "alice" not in str(info.value)


def test_a_rotated_key_list_reads_old_values_and_seals_with_the_new_key() -> None:
    old = SealedSerializer([KEY]).serialize(["kept"])
    rotated = SealedSerializer([OTHER, KEY])
    assert rotated.deserialize(old) == ["kept"]
    assert SealedSerializer([OTHER]).deserialize(rotated.serialize("new")) == "new"


def test_fingerprints_tell_keys_apart_and_reveal_nothing() -> None:
    assert fingerprint(KEY) == fingerprint(KEY) != fingerprint(OTHER)
    assert KEY.decode() not in fingerprint(KEY)
