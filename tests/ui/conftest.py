"""Fixtures of the UI tests: the app served on a free port for the browser tests, and a small
shoot of real DNG frames."""

from pathlib import Path

import pytest

from samples.shoot import build_sample_shoot
from tests.ui.browser_support import app_url  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def small_shoot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real DNG frames of sitter P0001 (one in its folder, one mapped by frames.csv)."""
    folder = tmp_path_factory.mktemp("ui-shoot") / "shoot"
    build_sample_shoot(folder, sitter="P0001", n_good=2, frame_size=(768, 512), include_bad=False)
    return folder
