"""``serve``: the HTTP service (``docs/service.md``) on uvicorn.

By default the process is also an executor (the embedded worker): it opens the runtime as
``worker`` would, runs workflows in DBOS's threads and the worker's periodic checks in a thread
of its own. ``--no-worker`` opens it as a submitter, for API processes beside separate
``worker``s on one PostgreSQL. Either way a callback loop delivers the signed status callbacks.
SIGINT/SIGTERM stop uvicorn gracefully (requests in flight finish), then the threads, then the
runtime.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
from collections.abc import Iterator

import typer
import uvicorn

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.cli.worker import ExecutorStopped, StallWatch, StatusChanges
from amplitude_dsr.dsr.executor import api_engine, open_runtime
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.dsr.retention import RetentionWatch
from amplitude_dsr.dsr.runtime import DEFAULT_EXECUTOR_ID, Runtime, adopt_orphans
from amplitude_dsr.dsr.takeover import DeadExecutorWatch
from amplitude_dsr.errors import DomainError, UsageError
from amplitude_dsr.service import DeliveryLoop, EmbeddedWorker, Service, ServiceConfig, create_app, load_or_create
from amplitude_dsr.service.app import COMMITTERS
from amplitude_dsr.service.context import CALLBACK_BASE_DELAY
from amplitude_dsr.service.links import DEFAULT_TTL, ResultsLinks
from amplitude_dsr.store.db import Pool

# The HTTP handlers' own connections (dsr.executor.api_engine): one per group committer on
# PostgreSQL (service.app.COMMITTERS) and two more, opened under load, for token look-ups.
API_POOL = Pool(COMMITTERS, 2)
SERVICE_DIR = "service"  # under the data directory: the processor's key pair
# The DataGrail webhook's shared secret: from the environment only (never a command-line value).
DATAGRAIL_SECRET_ENV = "AMPLITUDE_DSR_DATAGRAIL_SECRET"  # noqa: S105 (a variable name, not a secret)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", metavar="PORT", min=0, max=65535, help="Port (0: any free one)."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve the API only; separate `worker` processes run the requests."
    ),
    public_url: str = typer.Option(
        None,
        "--public-url",
        metavar="URL",
        envvar="AMPLITUDE_DSR_PUBLIC_URL",
        help="How controllers reach this service (default http://HOST:PORT); its host is the processor domain.",
    ),
    callback_retry_base: float = typer.Option(
        CALLBACK_BASE_DELAY,
        "--callback-retry-base",
        metavar="SECONDS",
        min=0.05,
        max=3600,
        help="Wait before retrying a failed status callback; doubles per attempt up to an hour.",
    ),
    results_link_ttl: int = typer.Option(
        DEFAULT_TTL,
        "--results-link-ttl",
        metavar="SECONDS",
        min=60,
        max=7 * 86400,
        help="How long a results link (results_url) works.",
    ),
    hold_erasures: bool = typer.Option(
        False,
        "--hold-erasures",
        envvar="AMPLITUDE_DSR_HOLD_ERASURES",
        help="New erasures wait (status held) until an admin approves them in the console (/ui).",
    ),
    executor_id: str = typer.Option(
        DEFAULT_EXECUTOR_ID,
        "--executor-id",
        metavar="ID",
        callback=common.executor_id,
        help="Executor identity of the embedded worker (PostgreSQL scale-out: one per worker).",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Serve the OpenDSR 2.0 API, with an embedded worker unless --no-worker."""
    stopped = _serve(
        host, port, no_worker, public_url, executor_id, callback_retry_base, results_link_ttl, hold_erasures
    )
    if json_out:
        common.emit_json(stopped)


@guarded
def _serve(
    host: str,
    port: int,
    no_worker: bool,
    public_url: str | None,
    executor_id: str,
    callback_retry_base: float,
    results_link_ttl: int,
    hold_erasures: bool = False,
) -> dict[str, object]:
    """Serve until a signal (or a lost executor lock); returns what ``--json`` prints then."""
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise UsageError("--public-url must be an http(s) URL such as https://dsr.example.com")
    sock = _listen(host, port)
    settings = common.settings()
    bound = sock.getsockname()[1]
    url = (public_url or f"http://{_url_host(host)}:{bound}").rstrip("/")
    with common.database_errors(settings.database_url):
        rt = open_runtime(
            settings, role="submitter" if no_worker else "executor", executor_id=executor_id, on_notice=_notice
        )
    changes = StatusChanges() if not no_worker else None
    service: Service | None = None
    try:
        config = ServiceConfig(
            public_url=url,
            callback_base_delay=callback_retry_base,
            datagrail_secret=os.environ.get(DATAGRAIL_SECRET_ENV) or None,
            hold_erasures=hold_erasures,
        )
        keys = rt.data_dir / SERVICE_DIR
        service = Service(
            rt=rt,
            config=config,
            signer=load_or_create(keys, config.domain),
            results=ResultsLinks.load_or_create(keys, results_link_ttl),
            api_engine=api_engine(rt, API_POOL),
        )
        server = GracefulServer(
            uvicorn.Config(
                create_app(service), log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                lifespan="on",
            )
        )  # fmt: skip
        service.background.append(DeliveryLoop(service))
        if not no_worker:
            if executor_id == DEFAULT_EXECUTOR_ID:  # we hold the lock every foreground command holds
                adopt_orphans(rt)
            # Another process took this executor's lock: stop serving too (as `worker` stops).
            stop_server = functools.partial(setattr, server, "should_exit", True)
            checks = worker_checks(rt, executor_id)
            service.background.append(EmbeddedWorker(checks, should_stop=rt.stop_requested.is_set, on_stop=stop_server))
        role = "API only" if no_worker else f"with embedded worker {executor_id}"
        common.err.print(f"amplitude-dsr service on {url} ({role}); Ctrl-C to stop", markup=False)
        server.run(sockets=[sock])
    finally:
        sock.close()
        if service is not None and service.api_engine is not None:
            service.api_engine.dispose()
        rt.close()
        if changes is not None:
            changes.detach()
    if rt.lock_lost is not None:
        # Another process runs as this executor now; every workflow resumes there.
        raise ExecutorStopped(rt.lock_lost)
    common.err.print("amplitude-dsr service stopped", markup=False)
    return {"url": url, "worker": None if no_worker else executor_id, "stopped": "signal"}


class GracefulServer(uvicorn.Server):
    """uvicorn's server, whose SIGINT/SIGTERM handling stops it gracefully (a second signal: at
    once) but does not raise the signal again afterwards, as uvicorn does: that would end the
    process before the runtime is closed (DBOS, the executor lock)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def worker_checks(rt: Runtime, executor_id: str) -> list[PeriodicCheck]:
    """What `amplitude-dsr worker` checks each tick (cli/worker.py)."""
    return [StallWatch(executor_id), DeadExecutorWatch(rt, _notice), RetentionWatch(rt, _notice)]


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything else starts (a taken port is one clear line)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise DomainError(f"cannot listen on {host}:{port}: {exc.strerror or type(exc).__name__}") from None
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _notice(message: str) -> None:
    common.err.print(message, markup=False)
