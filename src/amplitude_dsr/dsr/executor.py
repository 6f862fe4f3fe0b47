"""The composition root: build a process's services and, where it runs workflows, launch DBOS.

:func:`open_runtime` is the one place that launches DBOS. An executor (``worker``, the service's
embedded worker, and a foreground command when no worker runs) registers the configured instance
of ``dsr/workflows.py`` with its :class:`Runtime`, launches DBOS and starts its deletion sweep. A
submitter builds the same services without DBOS: it enqueues and reads through a ``DBOSClient``
(:meth:`Runtime.dbos_client`). ``offline`` is for commands that only read our tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig

from amplitude_dsr.amplitude import Budget
from amplitude_dsr.amplitude import budget as budget_module
from amplitude_dsr.config import Settings, dbos_database_url
from amplitude_dsr.dsr import sealing
from amplitude_dsr.dsr.connections import FOOTPRINTS, ExecutorLock, application_name, bound_dbos_pool
from amplitude_dsr.dsr.jobwatch import JobsWatch, SweepThread
from amplitude_dsr.dsr.runtime import (
    APP_NAME,
    APP_VERSION,
    DEFAULT_EXECUTOR_ID,
    FOREGROUND_CONCURRENCY,
    FOREGROUND_PREFIX,
    SHARED_QUEUES,
    Runtime,
    default_data_dir,
)
from amplitude_dsr.dsr.workflows import Workflows
from amplitude_dsr.errors import ConfigError
from amplitude_dsr.store import repo, sealed
from amplitude_dsr.store.audit import create_audit_tables
from amplitude_dsr.store.db import Pool, make_engine, pg_engine_options, private_dir, sqlite_path

ROLES = ("executor", "auto", "submitter", "offline")


def _role_kind(role: str, executor: bool) -> str:
    """The connection footprint of a process (``connections.FOOTPRINTS``)."""
    if role == "offline":
        return "offline"
    if executor:
        return "worker" if role == "executor" else "foreground"
    return "submitter"


def store_engine(settings: Settings) -> sa.Engine:
    """An engine on our tables alone (``status``), carrying the data key that unseals the
    requests' identifiers (``store/sealed.py``)."""
    engine = make_engine(settings.database_url)
    try:
        repo.create_tables(engine)
        keys, source = sealing.data_keys(settings)
        sealing.check_keys(engine, keys, source)
        sealed.attach(engine, keys)
    except Exception:
        engine.dispose()
        raise
    return engine


def api_engine(rt: Runtime, pool: Pool) -> sa.Engine:
    """A second engine on the runtime's database for a service's HTTP handlers (the group commit
    of ``POST /requests`` and token look-ups), with a pool of its own: on an embedded worker the
    runtime's pool serves dozens of workflow threads, and a handler queued behind their steps
    answered in seconds (``bench/PROBLEMS.md`` P-9). It carries the data key, so what it writes
    is sealed like everything else (``store/sealed.py``). The caller disposes of it."""
    kind = "worker" if rt.executor else "submitter"
    engine = make_engine(rt.settings.database_url, pool=pool, application_name=application_name(kind, "api"))
    keys, _ = sealing.data_keys(rt.settings)
    sealed.attach(engine, keys)
    return engine


def _create_dbos_tables(url: str, kind: str) -> None:
    """DBOS's own tables, as an executor's launch creates them, for a submitter on a database no
    executor has opened yet: its request is enqueued, not refused. ``DBOS.migrate`` returns at
    once when the schema is current and waits on DBOS's migration lock while another process
    migrates (a table that exists is not enough: its later columns may still be on their way).
    Its one short connection carries our application name, like every other
    (``connections.FOOTPRINTS``)."""
    target = sa.make_url(dbos_database_url(url))
    if sqlite_path(url) is None:
        target = target.update_query_dict({"application_name": application_name(kind, "dbos")})
    DBOS.migrate(target.render_as_string(hide_password=False))


def open_runtime(
    settings: Settings,
    *,
    role: str = "auto",
    executor_id: str = DEFAULT_EXECUTOR_ID,
    data_dir: Path | None = None,
    on_lock_lost: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> Runtime:
    """Open the database, budgets and (for an executor) DBOS for this process.

    ``role``: ``executor`` (must get the executor lock, else ConfigError: the worker),
    ``submitter`` (never runs workflows; no DBOS), ``auto`` (a foreground executor that runs only
    its own requests if the lock is free, else a submitter) or ``offline`` (our tables only:
    status, cancel and connection checks). An executor on PostgreSQL keeps its lock through
    dropped connections; when another process took it, ``on_lock_lost`` runs (default:
    :meth:`Runtime.lose_lock`, which asks the runtime's owner to stop), and ``on_notice`` receives
    one line when the lock had to be taken again (default: a warning).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    data_dir = private_dir(data_dir or default_data_dir(settings))
    lock: ExecutorLock | None = None
    executor = False
    if role in ("executor", "auto"):
        lock = ExecutorLock(
            settings.database_url, executor_id, data_dir, role="worker" if role == "executor" else "foreground"
        )
        executor = lock.try_acquire()
        if not executor:
            lock = None
            if role == "executor":
                raise ConfigError(
                    f"another process is already running workflows as executor {executor_id!r} "
                    "on this database (a worker?); stop it or use --executor-id"
                )
    try:
        rt = _open(settings, role=role, executor=executor, executor_id=executor_id, data_dir=data_dir, lock=lock)
    except Exception:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        lock.watch(on_lock_lost or rt.lose_lock, on_notice)
    if executor:
        rt._sweep = SweepThread(JobsWatch(rt))
    return rt


def _open(
    settings: Settings, *, role: str, executor: bool, executor_id: str, data_dir: Path, lock: ExecutorLock | None
) -> Runtime:
    kind = _role_kind(role, executor)
    footprint = FOOTPRINTS[kind]
    url = settings.database_url
    engine = make_engine(url, pool=footprint.store, application_name=application_name(kind, "store"))
    budget_options = pg_engine_options(
        footprint.budget, application_name(kind, "budget"), timeout=budget_module.POOL_TIMEOUT
    )
    budget = Budget(
        url, fraction=settings.budget_fraction, rate_scale=settings.rate_scale, pg_engine_options=budget_options
    )
    try:
        repo.create_tables(engine)
        create_audit_tables(engine)
        budget.create_tables()
        # Every process seals alike: DBOS checkpoints and the identifier columns (store/sealed.py).
        keys, source = sealing.data_keys(settings)
        sealing.check_keys(engine, keys, source)
        sealed.attach(engine, keys)
        serializer = None
        if role != "offline":
            serializer = sealing.SealedSerializer(keys)
            if not executor:
                _create_dbos_tables(url, kind)
    except Exception:
        engine.dispose()
        budget.close()
        raise
    common = {"settings": settings, "engine": engine, "budget": budget, "data_dir": data_dir}
    if not executor:  # a submitter (DBOSClient only) or offline (our tables only)
        return Runtime(**common, executor=False, executor_id=executor_id, dbos=False, serializer=serializer)  # type: ignore[arg-type]
    foreground = kind == "foreground"
    private = f"{FOREGROUND_PREFIX}{repo.new_id('p')}"
    rt = Runtime(
        **common, executor=True, executor_id=executor_id, foreground_queue=private if foreground else None,  # type: ignore[arg-type]
        _lock=lock, serializer=serializer,
    )  # fmt: skip
    rt.workflows = Workflows.serving(rt)  # registered before launch, so recovery finds it
    # A foreground command's DBOS executor ID is new, so DBOS recovers nothing when it launches.
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": dbos_database_url(url),
        "executor_id": private if foreground else executor_id,
        "application_version": APP_VERSION,
        "run_admin_server": False,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.1,
        "serializer": serializer,
    }  # type: ignore[typeddict-unknown-key]
    if sqlite_path(url) is None:  # on SQLite DBOS keeps its defaults: file handles are not server slots
        bound_dbos_pool(config, kind)
    try:
        DBOS(config=config)
        DBOS.listen_queues([private] if foreground else list(SHARED_QUEUES))
        DBOS.launch()
        for name, concurrency in SHARED_QUEUES.items():
            DBOS.register_queue(name, worker_concurrency=concurrency, polling_interval_sec=0.2)
        if foreground:
            DBOS.register_queue(private, worker_concurrency=FOREGROUND_CONCURRENCY, polling_interval_sec=0.2)
    except Exception:
        DBOS.destroy(destroy_registry=False)
        engine.dispose()
        budget.close()
        raise
    return rt
