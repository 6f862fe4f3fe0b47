"""amplitude-dsr: answer GDPR/CCPA access and deletion requests against Amplitude Analytics.

The top-level package re-exports the light public API (settings, identifiers, errors). The
durable machinery lives in :mod:`amplitude_dsr.dsr.api` (submit, wait, cancel) and
:mod:`amplitude_dsr.dsr.runtime` (open_runtime); the HTTP client in :mod:`amplitude_dsr.amplitude`.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from amplitude_dsr.config import OrgConfig, ProjectConfig, Settings, load_settings
    from amplitude_dsr.dsr.model import Identifier, IdentifierKind
    from amplitude_dsr.errors import (
        AmplitudeError,
        AuthenticationError,
        BudgetExhausted,
        CancelRefused,
        ConfigError,
        DsrError,
        RateLimited,
        UncertainOutcome,
        UsageError,
    )

# Imported on first use (PEP 562), so that importing the package (the console script does,
# before its Ctrl-C handling is in place) stays instant.
_ERRORS = (
    "AmplitudeError", "AuthenticationError", "BudgetExhausted", "CancelRefused", "ConfigError", "DsrError",
    "RateLimited", "UncertainOutcome", "UsageError",
)  # fmt: skip
_HOMES = {
    **dict.fromkeys(("OrgConfig", "ProjectConfig", "Settings", "load_settings"), "amplitude_dsr.config"),
    **dict.fromkeys(("Identifier", "IdentifierKind"), "amplitude_dsr.dsr.model"),
    **dict.fromkeys(_ERRORS, "amplitude_dsr.errors"),
}


def __getattr__(name: str) -> _typing.Any:
    if name in _HOMES:
        return getattr(_importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "AmplitudeError",
    "AuthenticationError",
    "BudgetExhausted",
    "CancelRefused",
    "ConfigError",
    "DsrError",
    "Identifier",
    "IdentifierKind",
    "OrgConfig",
    "ProjectConfig",
    "RateLimited",
    "Settings",
    "UncertainOutcome",
    "UsageError",
    "__version__",
    "load_settings",
]
