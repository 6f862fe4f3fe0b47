"""Browser fixtures: Debian's ``chromium`` driven by Playwright (sync API), headless, beside the
real service and emulator of ``tests/service`` (whose fixtures are reused here).

No browser is downloaded: Playwright launches the ``chromium`` found on ``PATH``. Without it the
tests skip, except in CI (``CI`` set), where a missing browser fails them (``.ci/run`` installs
it). ``AMPLITUDE_DSR_SCREENSHOTS=1`` writes each page's screenshot to ``docs/console/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import api_calls, catalog, db_url, emulator, make_token, service_env, start_service

__all__ = ["api_calls", "catalog", "db_url", "emulator", "make_token", "service_env", "start_service"]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
TIMEOUT_MS = 60_000  # generous: the machine may be busy; nothing here measures speed


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Not shared across tests: while Playwright's sync API is started it
    keeps an asyncio loop running in this thread, and DBOS, launched in process by later tests,
    refuses to register its queues under a running loop."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the browser tests need Debian's chromium package (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=path, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(**context_options)``: a page in a fresh browser context (its own cookies)."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(accept_downloads=True, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> None:
    """Keep the page's screenshot for docs/console.md (only when asked: CI leaves the tree clean)."""
    if os.environ.get("AMPLITUDE_DSR_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
