"""``EmulatorAdmin``: a small httpx wrapper around the emulator's admin HTTP API."""

from __future__ import annotations

from typing import Any

import httpx


class EmulatorAdmin:
    """One method per admin route; every method returns the decoded JSON body."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with httpx.Client(base_url=self.base_url, timeout=self._timeout) as client:
            response = client.request(method, "/_admin" + path, **kwargs)
            response.raise_for_status()
            return response.json()

    def state(self) -> dict[str, Any]:
        """Clock, scale, projects with keys and base URLs, and the org keys."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def catalog(self) -> dict[str, Any]:
        """The seeded awkward users, per project name."""
        result: dict[str, Any] = self._call("GET", "/catalog")
        return result

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """API calls logged after sequence number ``since``."""
        result: list[dict[str, Any]] = self._call("GET", "/requests", params={"since": since})
        return result

    def clear_log(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/requests")

    def advance(self, seconds: float = 0.0, days: float = 0.0) -> str:
        """Move the emulated clock forward; returns the new now (ISO 8601)."""
        body = self._call("POST", "/clock", json={"advance_seconds": seconds + days * 86_400})
        return str(body["now"])

    def set_speed(self, speed: float) -> str:
        """Set emulated seconds per real second; returns now."""
        return str(self._call("POST", "/clock", json={"speed": speed})["now"])

    def add_user(
        self,
        project: str,
        user_id: str | None = None,
        device_id: str | None = None,
        events: int = 0,
        session_events: int = 10,
    ) -> dict[str, Any]:
        """Create a user (with ``events`` events ending now)."""
        body = {
            "project": project,
            "user_id": user_id,
            "device_id": device_id,
            "events": events,
            "session_events": session_events,
        }
        result: dict[str, Any] = self._call("POST", "/users", json=body)
        return result

    def add_events(self, project: str, amplitude_id: int, count: int) -> dict[str, Any]:
        """Append events now; for a deleted user this creates a new Amplitude ID."""
        body = {"project": project, "amplitude_id": amplitude_id, "count": count}
        result: dict[str, Any] = self._call("POST", "/events", json=body)
        return result

    def merge(self, project: str, canonical_amplitude_id: int, merged_amplitude_id: int) -> dict[str, Any]:
        """Merge one user into another (the second ID becomes a merged ID)."""
        body = {
            "project": project,
            "canonical_amplitude_id": canonical_amplitude_id,
            "merged_amplitude_id": merged_amplitude_id,
        }
        result: dict[str, Any] = self._call("POST", "/merge", json=body)
        return result

    def inject_fault(
        self,
        kind: str,
        path: str | None = None,
        count: int | None = 1,
        *,
        method: str | None = None,
        project: str | None = None,
        delay: float | None = None,
        retry_after: float | None = None,
    ) -> dict[str, Any]:
        """Activate a fault for the next ``count`` matching requests (None: until cleared)."""
        body: dict[str, Any] = {"kind": kind, "path": path, "count": count, "method": method}
        body |= {"project": project, "delay": delay, "retry_after": retry_after}
        result: dict[str, Any] = self._call("POST", "/faults", json=body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        """The active faults (with their remaining ``count``)."""
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._call("DELETE", "/faults")

    def external_load(self, pool: str, fraction: float, project: str | None = None) -> None:
        """An outside consumer spends ``fraction`` of a pool (0 stops it)."""
        body = {"pool": pool, "fraction": fraction, "project": project}
        self._call("POST", "/external_load", json=body)

    def move_job(self, project: str, day: str, to_day: str) -> dict[str, Any]:
        """Reschedule a project's pending deletion job from ``day`` to ``to_day`` (YYYY-MM-DD),
        as Amplitude may do."""
        result: dict[str, Any] = self._call(
            "POST", "/move_job", json={"project": project, "day": day, "to_day": to_day}
        )
        return result

    def set_limits(
        self, rate_scale: float | None = None, enforce: bool | None = None, reset: bool = False
    ) -> dict[str, Any]:
        """Change the rate scale, switch enforcement, or forget all spending."""
        body: dict[str, Any] = {"reset": reset}
        if rate_scale is not None:
            body["rate_scale"] = rate_scale
        if enforce is not None:
            body["enforce"] = enforce
        result: dict[str, Any] = self._call("POST", "/limits", json=body)
        return result

    def dsar_synthetic(self, amplitude_id: int, approx_bytes: int) -> None:
        """Make that user's DSAR output a generated file of about ``approx_bytes``."""
        body = {"amplitude_id": amplitude_id, "approx_bytes": approx_bytes}
        self._call("POST", "/dsar_synthetic", json=body)
