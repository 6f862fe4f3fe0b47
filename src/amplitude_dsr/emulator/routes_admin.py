"""The admin HTTP API (no auth, prefix ``/_admin``): state, catalog, log, clock, data, faults."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .model import User, to_ms
from .routes_admin_ops import body_of, error
from .seed import SEEDED_PROJECTS, new_user
from .world import World

KINDS = {name: kind for name, _, kind in SEEDED_PROJECTS}


def user_entry(world: World, user: User) -> dict[str, Any]:
    """A catalog entry for one user."""
    entry: dict[str, Any] = {
        "user_id": user.user_id,
        "amplitude_id": user.amplitude_id,
        "device_ids": list(user.device_ids),
        "merged_amplitude_ids": list(user.merged_ids),
        "num_events": user.num_events(),
        "num_sessions": user.num_sessions(),
        "project": user.project,
        "app": world.projects[user.project].app,
        "deleted": user.deleted,
    }
    if user.num_events() > 1000:
        entry["page_boundary_session"] = list(user.session_bounds(999))
    return entry


def catalog(world: World) -> dict[str, Any]:
    """The seeded awkward cases per project, rendered from current state."""

    def render(value: Any, project: str) -> Any:
        if isinstance(value, list):
            return [render(v, project) for v in value]
        user = world.find_by_amplitude_id(project, value)
        assert user is not None
        return user_entry(world, user)

    with world.lock:
        return {
            name: {"app": world.projects[name].app, "region": world.projects[name].region}
            | {key: render(value, name) for key, value in cases.items()}
            for name, cases in world.catalog.items()
        }


def register(app: FastAPI, world: World) -> None:
    """Add the admin routes."""

    @app.get("/_admin/state")
    async def state(request: Request) -> JSONResponse:
        root = f"{request.url.scheme}://{request.url.netloc}"
        projects = [
            {
                "name": p.name,
                "app": p.app,
                "region": p.region,
                "api_key": p.api_key,
                "secret_key": p.secret_key,
                "base_url": root + ("/eu" if p.region == "eu" else ""),
            }
            for p in world.projects.values()
        ]
        org = {
            "org_id": world.org.org_id,
            "api_key": world.org.api_key,
            "secret_key": world.org.secret_key,
            "us_base_url": root,
            "eu_base_url": root + "/eu",
        }
        return JSONResponse(
            {
                "now": world.clock.now().isoformat(),
                "speed": world.clock.speed,
                "rate_scale": world.limits.rate_scale,
                "enforce_limits": world.limits.enforce,
                "seed": world.seed,
                "projects": projects,
                "org": org,
            }
        )

    @app.get("/_admin/catalog")
    async def get_catalog() -> JSONResponse:
        world.refresh()
        return JSONResponse(catalog(world))

    @app.get("/_admin/requests")
    async def requests(since: int = 0) -> JSONResponse:
        return JSONResponse(world.log.since(since))

    @app.delete("/_admin/requests")
    async def clear_requests() -> JSONResponse:
        world.log.clear()
        return JSONResponse({"cleared": True, "last_seq": world.log.last_seq})

    @app.post("/_admin/clock")
    async def clock(request: Request) -> JSONResponse:
        body = await body_of(request)
        try:
            if "speed" in body:
                world.clock.set_speed(float(body["speed"]))
            if "advance_seconds" in body:
                world.clock.advance(float(body["advance_seconds"]))
        except ValueError as exc:
            return error(400, str(exc))
        now = world.refresh()
        return JSONResponse({"now": now.isoformat(), "speed": world.clock.speed})

    @app.post("/_admin/users")
    async def add_user(request: Request) -> JSONResponse:
        body = await body_of(request)
        name = body.get("project")
        if name not in world.projects:
            return error(404, f"unknown project {name!r}")
        user_id = body.get("user_id")
        with world.lock:
            if user_id is not None and world.users_with_user_id(name, str(user_id)):
                return error(409, "a live user with this user_id already exists")
            now = world.clock.now()
            user = new_user(world, name, user_id, KINDS.get(name, "web"), to_ms(now))
            if body.get("device_id"):
                user.device_ids = [str(body["device_id"])]
            count = int(body.get("events") or 0)
            if count:
                world.add_events(user, count, int(body.get("session_events") or 10), now)
            world.index_user(user)
            return JSONResponse(user_entry(world, user))

    @app.post("/_admin/events")
    async def add_events(request: Request) -> JSONResponse:
        body = await body_of(request)
        name = body.get("project")
        if name not in world.projects:
            return error(404, f"unknown project {name!r}")
        world.refresh()
        with world.lock:
            user = world.find_by_amplitude_id(name, int(body.get("amplitude_id", 0)))
            if user is None:
                return error(404, "unknown amplitude_id")
            now = world.clock.now()
            previous = None
            if user.deleted:  # re-collection: the same person becomes a new Amplitude user
                previous = user.amplitude_id
                fresh = new_user(world, name, user.user_id, KINDS.get(name, "web"), to_ms(now))
                fresh.device_ids = list(user.device_ids)
                fresh.profile, fresh.properties = dict(user.profile), dict(user.properties)
                user = fresh
            count = int(body.get("count") or 1)
            world.add_events(user, count, int(body.get("session_events") or 10), now)
            world.index_user(user)
            out = user_entry(world, user)
            out["recollected"] = previous is not None
            out["previous_amplitude_id"] = previous
            return JSONResponse(out)

    @app.post("/_admin/merge")
    async def merge(request: Request) -> JSONResponse:
        body = await body_of(request)
        name = body.get("project")
        if name not in world.projects:
            return error(404, f"unknown project {name!r}")
        with world.lock:
            keep = world.find_by_amplitude_id(name, int(body.get("canonical_amplitude_id", 0)))
            gone = world.find_by_amplitude_id(name, int(body.get("merged_amplitude_id", 0)))
            if keep is None or gone is None or keep.deleted or gone.deleted or keep is gone:
                return error(404, "both amplitude IDs must be distinct live users")
            keep.events.extend(gone.events)
            keep.device_ids += [d for d in gone.device_ids if d not in keep.device_ids]
            when = to_ms(world.clock.now())
            for aid in gone.all_ids:
                keep.merged_ids.append(aid)
                keep.merge_times[str(aid)] = when
            world.projects[name].users.pop(gone.amplitude_id, None)
            world.index_user(keep)
            return JSONResponse(user_entry(world, keep))
