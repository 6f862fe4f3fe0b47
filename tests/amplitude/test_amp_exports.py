"""The package's public API: a sorted ``__all__`` of documented, existing names."""

from __future__ import annotations

import inspect

import amplitude_dsr.amplitude as package


def test_all_is_sorted_and_exists() -> None:
    # isort style, as ruff's RUF022 checks: CONSTANTS, then Classes, then functions.
    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(package.__all__) == sorted(package.__all__, key=key)
    for name in package.__all__:
        assert hasattr(package, name), name


def test_public_callables_have_docstrings() -> None:
    for name in package.__all__:
        member = getattr(package, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert inspect.getdoc(member), name
            for attr, value in vars(member).items() if inspect.isclass(member) else []:
                if not attr.startswith("_") and inspect.isfunction(value):
                    assert inspect.getdoc(value), f"{name}.{attr}"
