"""Fixtures of the UI tests: the app served on a free port for the browser tests."""

from tests.ui.browser_support import app_url  # noqa: F401 (a fixture)
