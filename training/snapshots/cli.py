"""`likeness dataset`: build, list, show, check and export dataset snapshots."""

from __future__ import annotations

from likeness.cli import sub_app

dataset_app = sub_app("Build balanced, consent-checked dataset snapshots and export them for training.")
