"""Fixtures of the browser tests: headless Chromium and the screenshot folder.

Screenshots go to a temporary folder unless TWOFA_SCREENSHOT_DIR names
another one, so that a test run does not rewrite the committed PNGs. Refresh
them with::

    TWOFA_SCREENSHOT_DIR=docs/screenshots .venv/bin/pytest tests/e2e
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, browser_skip_reason, chromium_context

SCREENSHOT_DIR_VARIABLE = "TWOFA_SCREENSHOT_DIR"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium context with a fresh profile, shared by one test module."""
    reason = browser_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with (
        sync_playwright() as playwright,
        chromium_context(playwright, profile) as context,
    ):
        # Long enough for the first run of a page, which opens the database.
        context.set_default_timeout(30_000)
        yield context


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    configured = os.environ.get(SCREENSHOT_DIR_VARIABLE)
    if not configured:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(configured)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder
