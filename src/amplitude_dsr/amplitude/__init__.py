"""The Amplitude HTTP layer: the only code that talks to Amplitude.

Knows nothing about privacy requests. See ``docs/client.md`` for the API, the budgets and what
each exception means to a caller.
"""

from amplitude_dsr.amplitude.budget import Budget, PoolRoom
from amplitude_dsr.amplitude.client import (
    AmplitudeClient,
    deletion_body,
    deletion_windows,
    wire_bool,
)
from amplitude_dsr.amplitude.dsar import DsarClient
from amplitude_dsr.amplitude.hosts import REGION_BASE_URLS, base_url, scope_key
from amplitude_dsr.amplitude.limits import POOLS, PoolSpec
from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.amplitude.models import (
    DeletionEntry,
    DeletionJob,
    DeletionRemoval,
    DsarCreated,
    DsarRequest,
    Event,
    EventTypeInfo,
    SearchMatch,
    UserActivity,
    UserData,
    UserSearchResult,
    clean_sentinels,
)
from amplitude_dsr.amplitude.retry import backoff_delay, should_retry
from amplitude_dsr.amplitude.transport import classify, redact_url
from amplitude_dsr.config import normalize_database_url

__all__ = [
    "POOLS",
    "REGION_BASE_URLS",
    "AmplitudeClient",
    "Budget",
    "DeletionEntry",
    "DeletionJob",
    "DeletionRemoval",
    "DsarClient",
    "DsarCreated",
    "DsarRequest",
    "Event",
    "EventTypeInfo",
    "ListedJob",
    "PoolRoom",
    "PoolSpec",
    "SearchMatch",
    "UserActivity",
    "UserData",
    "UserSearchResult",
    "backoff_delay",
    "base_url",
    "classify",
    "clean_sentinels",
    "deletion_body",
    "deletion_windows",
    "normalize_database_url",
    "redact_url",
    "scope_key",
    "should_retry",
    "wire_bool",
]
