"""`likeness capture`: shoot plans, the live hot folder and closing a session."""

from __future__ import annotations

from likeness.cli import sub_app

capture_app = sub_app("Shoot plans from dataset gaps, and a live hot folder that calls reshoots at once.")
