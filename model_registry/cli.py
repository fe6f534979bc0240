"""`likeness registry` (checkpoints and their aliases) and `likeness lineage` (person to face)."""

from __future__ import annotations

from likeness.cli import sub_app

registry_app = sub_app("Checkpoints with their aliases, metrics and taint.")
lineage_app = sub_app("Trace a person, release, shot, snapshot, checkpoint or image up and down its lineage.")
