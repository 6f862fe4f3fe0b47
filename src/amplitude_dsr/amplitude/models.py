"""Wire models for the Amplitude responses we read (facts: ``docs/amplitude.md``).

Every model tolerates unknown fields (Amplitude adds keys over time) and coerces IDs that arrive
as numbers or numeric strings. Sentinel values (Long.MAX/Long.MIN, used for "unknown") become
``None`` through :func:`clean_sentinels`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

LONG_MAX = 9223372036854775807  # sentinel for unknown lat/lng (docs/amplitude.md#user-activity)
LONG_MIN = -9223372036854775808  # sentinel for unknown firstSeen/lastSeen (docs/amplitude.md#user-activity)
SENTINELS = frozenset({LONG_MAX, LONG_MIN, str(LONG_MAX), str(LONG_MIN)})


def _to_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _to_opt_str(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


AmplitudeId = Annotated[int, BeforeValidator(_to_int)]
UserIdStr = Annotated[str | None, BeforeValidator(_to_opt_str)]


def clean_sentinels(value: Any) -> Any:
    """Return ``value`` with every Long.MAX/Long.MIN sentinel replaced by ``None`` (recursively)."""
    if isinstance(value, dict):
        return {k: clean_sentinels(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_sentinels(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and value in SENTINELS:
        return None
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


MatchType = Literal["match_user_or_device_id", "match_amplitude_id", "match_user_prefix", "nomatch"]


class SearchMatch(_Wire):
    """One entry of ``matches`` in a User Search response."""

    user_id: UserIdStr = None
    amplitude_id: AmplitudeId
    last_device_id: str | None = None
    platform: str | None = None
    country: str | None = None
    last_seen: str | None = None


class UserSearchResult(_Wire):
    """``GET /api/2/usersearch``. ``type`` is kept as a plain string: unknown types are possible."""

    matches: list[SearchMatch] = Field(default_factory=list)
    type: str = "nomatch"


class UserData(_Wire):
    """``userData`` of a User Activity response; sentinel values are cleaned on parse."""

    user_id: UserIdStr = None
    canonical_amplitude_id: AmplitudeId | None = None
    merged_amplitude_ids: list[AmplitudeId] = Field(default_factory=list)
    num_events: int | None = None
    num_sessions: int | None = None
    usage_time: int | None = None
    first_used: str | None = None
    last_used: str | None = None
    purchases: int | None = None
    revenue: float | None = None
    platform: str | None = None
    os: str | None = None
    version: str | None = None
    device: str | None = None
    device_type: str | None = None
    carrier: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    dma: str | None = None
    language: str | None = None
    start_version: str | None = None
    device_ids: list[str] = Field(default_factory=list)
    last_location: dict[str, Any] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        cleaned = clean_sentinels(data)
        if isinstance(cleaned, dict):
            if cleaned.get("merged_amplitude_ids") is None:
                cleaned["merged_amplitude_ids"] = []
            if cleaned.get("device_ids") is None:
                cleaned["device_ids"] = cleaned.get("deviceIds") or []
            if cleaned.get("properties") is None:
                cleaned["properties"] = {}
            loc = cleaned.get("last_location")
            if isinstance(loc, dict) and all(v is None for v in loc.values()):
                cleaned["last_location"] = None
        return cleaned


class Event(_Wire):
    """One raw event. Only the fields we reason about are typed; the rest stay as extras."""

    uuid: str | None = None
    event_type: str | None = None
    event_time: str | None = None
    session_id: int | None = None
    amplitude_id: AmplitudeId | None = None
    user_id: UserIdStr = None
    device_id: str | None = None
    insert_id: str | None = Field(default=None, alias="$insert_id")
    app: int | None = None

    def dedupe_key(self) -> str:
        """``uuid`` where present, else ``$insert_id``, else a stable fallback of the payload."""
        if self.uuid:
            return self.uuid
        if self.insert_id:
            return f"insert:{self.insert_id}"
        return f"raw:{self.amplitude_id}:{self.event_time}:{self.event_type}:{self.session_id}"

    def to_wire(self) -> dict[str, Any]:
        """The event as Amplitude sent it (aliases restored, unknown fields kept)."""
        return self.model_dump(by_alias=True, exclude_none=False)


class UserActivity(_Wire):
    """``GET /api/2/useractivity``: a user summary plus one page of events."""

    user_data: UserData = Field(alias="userData")
    events: list[Event] = Field(default_factory=list)


class DeletionEntry(_Wire):
    """One entry of ``amplitude_ids`` in a deletion job."""

    amplitude_id: AmplitudeId
    requested_on_day: str | None = None
    requester: str | None = None
    user_id: UserIdStr = None


class DeletionJob(_Wire):
    """A User Privacy v1 job, from POST (receipt) or GET (listing)."""

    day: str
    status: str
    amplitude_ids: list[DeletionEntry] = Field(default_factory=list)
    invalid_ids: list[str] = Field(default_factory=list)
    app: int | None = None
    active_scrub_done_date: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _invalid_ids(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            raw = data.get("invalid_ids", data.get("invalid_id"))
            data["invalid_ids"] = [str(v) for v in raw] if raw else []
        return data


class DeletionRemoval(_Wire):
    """Response of ``DELETE /api/2/deletions/users/{amplitude_id}/{day}``."""

    amplitude_id: AmplitudeId
    requested_on_day: str | None = None
    requester: str | None = None


class DsarCreated(_Wire):
    """Response (202) of ``POST /api/2/dsar/requests``."""

    request_id: int = Field(alias="requestId")


class DsarRequest(_Wire):
    """Response of ``GET /api/2/dsar/requests/{requestId}``."""

    request_id: int = Field(alias="requestId")
    user_id: UserIdStr = Field(default=None, alias="userId")
    amplitude_id: AmplitudeId | None = Field(default=None, alias="amplitudeId")
    start_date: str | None = Field(default=None, alias="startDate")
    end_date: str | None = Field(default=None, alias="endDate")
    status: str
    fail_reason: str | None = Field(default=None, alias="failReason")
    urls: list[str] = Field(default_factory=list)
    expires: str | None = None


class EventTypeInfo(_Wire):
    """One entry of ``data`` in ``GET /api/2/events/list``."""

    name: str | None = None
    value: str | None = None
    totals: int | None = None
