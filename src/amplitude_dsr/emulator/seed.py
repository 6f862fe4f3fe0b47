"""Deterministic seeding of the world: projects, keys and the awkward users clients must handle.

Same seed -> same keys, IDs, users and events; times are relative to the clock start.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .model import EVENT_TYPES, Bulk, Event, Org, Project, User, stable_uuid, to_ms

if TYPE_CHECKING:
    from .world import World

DAY_MS = 86_400_000
NAMES = (
    "alice", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne", "zoe",
    "arthur", "bella", "cedric", "diana", "edgar", "fiona", "gavin", "hazel", "igor", "jasmine",
    "kevin", "laura", "marco", "nora", "oscar", "paula", "quentin", "rosa", "samuel", "tina",
)  # fmt: skip

PROFILES: dict[str, dict[str, str]] = {
    "web": {
        "platform": "Web", "os": "Chrome 126", "os_name": "Chrome", "os_version": "126",
        "device": "Mac", "device_type": "Mac", "device_brand": "Apple", "carrier": "",
        "library": "amplitude-ts/2.11.0", "version": "4.2.0", "start_version": "3.9.1",
    },
    "ios": {
        "platform": "iOS", "os": "ios 17.5", "os_name": "ios", "os_version": "17.5",
        "device": "Apple iPhone", "device_type": "Apple iPhone 15", "device_brand": "Apple",
        "carrier": "AT&T", "library": "amplitude-swift/1.4.0", "version": "7.1.2",
        "start_version": "6.0.0",
    },
    "android": {
        "platform": "Android", "os": "android 14", "os_name": "android", "os_version": "14",
        "device": "Google Pixel", "device_type": "Google Pixel 8", "device_brand": "Google",
        "carrier": "Vodafone", "library": "amplitude-android/1.16.0", "version": "2.3.4",
        "start_version": "2.0.0",
    },
}  # fmt: skip
PLACES = (
    ("United States", "California", "San Francisco", "San Francisco-Oakland-San Jose, CA",
     "37.7749", "-122.4194", "English"),
    ("United States", "New York", "New York", "New York, NY", "40.7128", "-74.0060", "English"),
    ("Germany", "Berlin", "Berlin", "", "52.5200", "13.4050", "German"),
    ("France", "Ile-de-France", "Paris", "", "48.8566", "2.3522", "French"),
)  # fmt: skip
SEEDED_PROJECTS = (("web", "us", "web"), ("mobile", "us", "ios"), ("eu-app", "eu", "android"))


def populate(world: World) -> None:
    """Fill ``world`` with the seeded org, projects and users."""
    rng = world.rng
    world.org = Org(org_id=rng.randrange(10_000, 99_999), api_key="", secret_key="")
    world.org.api_key, world.org.secret_key = world.new_key(), world.new_key()
    for name, region, kind in SEEDED_PROJECTS:
        project = Project(
            name=name,
            app=rng.randrange(100_000, 999_999),
            region=region,
            api_key=world.new_key(),
            secret_key=world.new_key(),
        )
        world.add_project(project)
        world.catalog[name] = _seed_project(world, project, kind)


def new_user(world: World, project: str, user_id: str | None, kind: str, when_ms: int) -> User:
    """A user with a deterministic profile and one device, not yet holding events."""
    rng = world.rng
    place = PLACES[rng.randrange(len(PLACES))]
    profile = dict(PROFILES[kind])
    profile.update(
        country=place[0], region=place[1], city=place[2], dma=place[3], lat=place[4],
        lng=place[5], language=place[6],
        ip_address=f"203.0.113.{rng.randrange(1, 254)}",
    )  # fmt: skip
    props: dict[str, object] = {"plan": rng.choice(["free", "pro", "team"])}
    if user_id and "@" in user_id:
        props["email"] = user_id
    return User(
        amplitude_id=world.new_amplitude_id(),
        project=project,
        user_id=user_id,
        device_ids=[stable_uuid(world.seed, "device", rng.random()).upper()],
        created_ms=when_ms,
        profile=profile,
        properties=props,
    )


def lay_out(
    world: World,
    user: User,
    sizes: list[int],
    newest_ms: int,
    oldest_ms: int,
    *,
    amplitude_id: int | None = None,
    unsorted_every: int = 0,
) -> None:
    """Add sessions of the given sizes (newest first) between ``oldest_ms`` and ``newest_ms``."""
    rng = world.rng
    step = 30_000
    busy = sum(sizes) * step
    max_gap = max(3_600_000, (newest_ms - oldest_ms - busy) * 2 // max(1, len(sizes)))
    t = newest_ms
    for n, size in enumerate(sizes):
        start = t - size * step
        times = [start + k * step + rng.randrange(0, 5_000) for k in range(size)]
        if unsorted_every and n % unsorted_every == 3 and size > 2:
            times[0], times[1] = times[1], times[0]  # a session not sorted by event_time
        for k, when in enumerate(times):
            eid = world.new_event_id()
            user.events.append(
                Event(
                    event_id=eid,
                    amplitude_id=amplitude_id or user.amplitude_id,
                    device_id=user.device_ids[-1],
                    time_ms=when,
                    session_id=start,
                    event_type=EVENT_TYPES[rng.randrange(len(EVENT_TYPES))],
                    uuid=stable_uuid(world.seed, user.amplitude_id, eid),
                    properties={"seq": k, "path": f"/page/{rng.randrange(40)}"},
                )
            )
        t = start - rng.randrange(3_600_000, max_gap)
    user.created_ms = min([user.created_ms, *(e.time_ms for e in user.events)])
    user.touch()


def _random_sizes(rng: random.Random, total: int, low: int = 1, high: int = 15) -> list[int]:
    sizes: list[int] = []
    while total > 0:
        size = min(total, rng.randint(low, high))
        sizes.append(size)
        total -= size
    return sizes


def _seed_project(world: World, project: Project, kind: str) -> dict[str, object]:
    rng = world.rng
    now_ms = to_ms(world.clock.start)
    recent = now_ms - rng.randrange(1, 6) * 3_600_000
    long_ago = now_ms - 400 * DAY_MS
    name = project.name

    def make(user_id: str | None, events: int, span_days: int = 400) -> User:
        user = new_user(world, name, user_id, kind, now_ms - span_days * DAY_MS)
        if events:
            oldest = now_ms - span_days * DAY_MS
            lay_out(world, user, _random_sizes(rng, events), recent, oldest)
        world.index_user(user)
        return user

    if name == "web":
        ordinary_ids = [f"{n}@example.com" for n in NAMES[:20]]
    elif name == "mobile":
        ordinary_ids = [f"{n}@example.com" for n in NAMES[:5]]
        ordinary_ids += [f"{n}@example.net" for n in NAMES[20:35]]
    else:
        ordinary_ids = [f"{n}@example.eu" for n in NAMES[20:40]]
    ordinary = [make(uid, rng.randint(5, 60)) for uid in ordinary_ids]
    pair = [make("bob@example.co", rng.randint(5, 30)), make("bob@example.com", 25)]
    triple = [make(uid, rng.randint(3, 20)) for uid in ("user_12", "user_123", "user_1234")]
    device_only = [make(None, rng.randint(3, 12), 60) for _ in range(2)]
    sparse = make("sparse@example.org", 0)

    merged = make("merged@example.com", 20, 30)
    for _ in range(2):
        other = new_user(world, name, None, kind, merged.created_ms)
        merged.device_ids.append(other.device_ids[0])
        lay_out(world, merged, [4, 6], recent - 40 * DAY_MS, long_ago, amplitude_id=other.amplitude_id)
        merged.merged_ids.append(other.amplitude_id)
        merged.merge_times[str(other.amplitude_id)] = recent - 35 * DAY_MS
    world.index_user(merged)

    heavy = make("heavy@example.com", 0)
    sizes = [*_random_sizes(rng, 960, 10, 40), 20]  # 980 events, then a 40-event session
    sizes += [40, *_random_sizes(rng, 480, 10, 40)]
    lay_out(world, heavy, sizes, recent, long_ago, unsorted_every=7)
    world.index_user(heavy)

    marathon = make("marathon@example.com", 0)
    lay_out(world, marathon, [1100, *_random_sizes(rng, 200, 10, 30)], recent, long_ago)
    world.index_user(marathon)

    bulk = make("bulk@example.com", 30, 20)
    bulk.bulk = Bulk(250_000, now_ms - 30 * DAY_MS, now_ms - 33 * DAY_MS, session_size=50)
    world.index_user(bulk)

    catalog: dict[str, object] = {
        "ordinary": [u.amplitude_id for u in ordinary],
        "prefix_pairs": [[u.amplitude_id for u in pair], [u.amplitude_id for u in triple]],
        "device_only": [u.amplitude_id for u in device_only],
        "sparse": sparse.amplitude_id,
        "merged": merged.amplitude_id,
        "heavy": heavy.amplitude_id,
        "long_session": marathon.amplitude_id,
        "dsar_oversize": bulk.amplitude_id,
    }
    if name == "web":
        numeric = make(str(ordinary[0].amplitude_id), 8)
        catalog["numeric_user_id"] = numeric.amplitude_id
    if name in ("web", "mobile"):
        catalog["cross_project"] = [u.amplitude_id for u in ordinary[:5]]
    return catalog
