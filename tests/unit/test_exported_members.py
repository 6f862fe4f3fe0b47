"""The public API is what ``__all__`` says, in isort order (as ruff's RUF022 keeps it), and
every name resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["amplitude_dsr", "amplitude_dsr.amplitude"]
SUBPACKAGES = {"config", "dsr", "errors", "states", "amplitude", "store", "service", "cli", "emulator"}


def isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_key)
    for member in exported:
        assert hasattr(module, member), member


def test_every_public_member_is_exported() -> None:
    import amplitude_dsr

    public = {n for n in vars(amplitude_dsr) if not n.startswith("_") and n not in SUBPACKAGES}
    assert public <= set(amplitude_dsr.__all__)
