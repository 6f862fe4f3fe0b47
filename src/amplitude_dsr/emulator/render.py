"""Render stored users and events in Amplitude's wire format (facts: docs/amplitude.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .model import Event, User

# docs/amplitude.md#user-activity (gotcha 6): sentinel values for unknown data.
LONG_MAX = 9223372036854775807
LONG_MIN = -9223372036854775808


def fmt_time(ms: int) -> str:
    """Amplitude's event time format: ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def fmt_day(ms: int) -> str:
    """``YYYY-MM-DD`` of an epoch-millisecond time."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def match_entry(user: User) -> dict[str, Any]:
    """One User Search match."""
    span = user.first_last_ms()
    return {
        "user_id": user.user_id,
        "amplitude_id": user.amplitude_id,
        "last_device_id": user.device_ids[-1] if user.device_ids else None,
        "platform": user.profile["platform"],
        "country": user.profile["country"],
        "last_seen": fmt_day(span[1] if span else user.created_ms),
    }


def user_data(user: User) -> dict[str, Any]:
    """The ``userData`` object of User Activity, sentinels included for sparse users."""
    p = user.profile
    span = user.first_last_ms()
    purchases = sum(1 for e in user.events if e.event_type == "Purchase")
    lat = float(p["lat"]) if span else LONG_MAX
    lng = float(p["lng"]) if span else LONG_MAX
    return {
        "user_id": user.user_id,
        "canonical_amplitude_id": user.amplitude_id,
        "merged_amplitude_ids": list(user.merged_ids),
        "merge_times": dict(user.merge_times),
        "num_events": user.num_events(),
        "num_sessions": user.num_sessions(),
        "usage_time": user.num_events() * 61_000,
        "usageTime": user.num_events() * 61_000,
        "first_used": fmt_day(span[0]) if span else None,
        "last_used": fmt_day(span[1]) if span else None,
        "firstSeen": span[0] if span else LONG_MIN,
        "lastSeen": span[1] if span else LONG_MIN,
        "purchases": purchases,
        "revenue": round(purchases * 4.99, 2),
        "platform": p["platform"],
        "os": p["os"],
        "version": p["version"],
        "start_version": p["start_version"],
        "device": p["device"],
        "device_type": p["device_type"],
        "carrier": p["carrier"],
        "country": p["country"],
        "region": p["region"],
        "city": p["city"],
        "dma": p["dma"],
        "language": p["language"],
        "device_ids": list(user.device_ids),
        "deviceIds": list(user.device_ids),
        "last_device_id": user.device_ids[-1] if user.device_ids else None,
        "last_location": {"lat": lat, "lng": lng},
        "lastLocationLat": lat,
        "lastLocationLong": lng,
        "properties": dict(user.properties),
        "aliasing_user_ids": [],
        "aliased_user_id": None,
        "aliasing_profiles": [],
    }


def event_json(user: User, event: Event, app: int) -> dict[str, Any]:
    """One event as User Activity and DSAR outputs show it."""
    p = user.profile
    when = fmt_time(event.time_ms)
    received = fmt_time(event.time_ms + 850)
    return {
        "app": app,
        "amplitude_id": event.amplitude_id,
        "user_id": user.user_id,
        "device_id": event.device_id,
        "event_id": event.event_id,
        "session_id": event.session_id,
        "event_type": event.event_type,
        "raw_event_type": event.event_type,
        "amplitude_event_type": None,
        "uuid": event.uuid,
        "$insert_id": event.uuid,
        "$insert_key": None,
        "$schema": None,
        "event_time": when,
        "client_event_time": when,
        "client_upload_time": fmt_time(event.time_ms + 300),
        "server_upload_time": received,
        "server_received_time": received,
        "processed_time": received,
        "user_creation_time": fmt_time(user.created_ms),
        "version_name": p["version"],
        "start_version": p["start_version"],
        "platform": p["platform"],
        "os_name": p["os_name"],
        "os_version": p["os_version"],
        "device_brand": p["device_brand"],
        "device_manufacturer": p["device_brand"],
        "device_model": p["device_type"],
        "device_family": p["device"],
        "device_type": p["device_type"],
        "device_carrier": p["carrier"],
        "library": p["library"],
        "language": p["language"],
        "country": p["country"],
        "region": p["region"],
        "city": p["city"],
        "dma": p["dma"],
        "location_lat": float(p["lat"]),
        "location_lng": float(p["lng"]),
        "ip_address": p["ip_address"],
        "idfa": None,
        "adid": None,
        "paying": "true" if event.event_type == "Purchase" else None,
        "event_properties": dict(event.properties),
        "user_properties": dict(user.properties),
        "global_user_properties": {},
        "group_properties": {},
        "groups": {},
        "data": {"path": "/2/httpapi", "user_properties_updated": False, "group_ids": {}},
        "is_attribution_event": False,
        "amplitude_attribution_ids": None,
        "sample_rate": None,
        "plan": {},
        "partner_id": None,
        "source_id": None,
    }
