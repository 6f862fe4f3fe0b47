"""amplitude-dsr: answer GDPR/CCPA access and deletion requests against Amplitude Analytics.

The top-level package re-exports the light public API (settings, identifiers, errors). The
durable machinery lives in :mod:`amplitude_dsr.dsr.api` (submit, wait, cancel) and
:mod:`amplitude_dsr.dsr.runtime` (open_runtime); the HTTP client in :mod:`amplitude_dsr.amplitude`.
"""

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
