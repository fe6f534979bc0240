"""Training snapshots: plain tensors, state_dicts and JSON-able metadata, written atomically.

A snapshot is one `torch.save` file holding only what `torch.load(..., weights_only=True)`
accepts (tensors, dicts, lists, tuples, str, int, float, bool, None): loading one never runs
code, unlike a pickle of modules. Networks are rebuilt from the `network_config` it carries.

Keys (the contract with readers such as generation and the model registry):

    format, version            "likeness.stylegan2-ada.snapshot", SNAPSHOT_VERSION
    G, D, G_ema                state_dicts (G_ema is what generation uses)
    G_opt, D_opt               Adam state_dicts, compact: with beta1 = 0 (the StyleGAN2 setting)
                               Adam's first moment is only the last gradient, which the next
                               step overwrites before reading it, so it is not stored
                               (`compact_adam_state`); `expand_adam_state` puts zeros back, and
                               the next step computes bit for bit what it would have
    loss                       StyleGAN2Loss.state_dict() (pl_mean)
    augment_p, ada_stats       ADA probability and the partial sums of the current ADA interval
    cur_nimg, step, tick       progress (images shown, optimiser steps, ticks)
    data_position              samples drawn from the data stream (equals cur_nimg)
    rng                        {"torch": uint8 tensor, "cuda": [uint8 tensors]}
    seconds                    training time so far
    train_config, network_config   TrainConfig.to_dict(), NetworkConfig.to_dict()

File names hold the image count, network-snapshot-{kimg:06d}.{rest:03d}.pt (kimg with its three
decimals: 4 images is network-snapshot-000000.004.pt), so two snapshots never share a name;
files named by whole kimg only (network-snapshot-000004.pt, version 1) are still read.

A file is complete before its name appears (`likeness.files.write_atomic`: temporary file in
the same folder, fsync, rename, fsync of the folder), so a run killed while saving leaves the
previous snapshot as the latest; `find_latest_snapshot` ignores the temporary files such a kill
leaves behind.

Beside the snapshots a run folder holds OPTIONS_FILE (the resolved settings, written when the
run starts) and METRICS_FILE (one JSON line per snapshot, appended after the snapshot file).
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from likeness.errors import InvalidInput, NotFound
from likeness.files import write_atomic

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "likeness.stylegan2-ada.snapshot"
SNAPSHOT_VERSION = 2                # 2: compact Adam state (version 1 files are read too)
READABLE_VERSIONS = (1, 2)
SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d{6,})(?:\.(\d{3}))?\.pt$")
METRICS_FILE = "metrics.jsonl"
OPTIONS_FILE = "training_options.json"
REQUIRED_KEYS = ("G", "D", "G_ema", "G_opt", "D_opt", "loss", "augment_p", "ada_stats", "cur_nimg",
                 "step", "tick", "rng", "train_config", "network_config")


def nimg_label(cur_nimg: int) -> str:
    """The image count as kimg with three decimals, zero-padded: 4 -> 000000.004, 12000 -> 000012.000."""
    kimg, rest = divmod(int(cur_nimg), 1000)
    return f"{kimg:06d}.{rest:03d}"


def snapshot_name(cur_nimg: int) -> str:
    """`network-snapshot-{kimg:06d}.{rest:03d}.pt`: unique per image count."""
    return f"network-snapshot-{nimg_label(cur_nimg)}.pt"


def grid_name(cur_nimg: int) -> str:
    """The sample grid written with the snapshot at `cur_nimg`: fakes{kimg:06d}.{rest:03d}.png."""
    return f"fakes{nimg_label(cur_nimg)}.png"


def compact_adam_state(state: dict[str, Any]) -> dict[str, Any]:
    """An Adam state_dict without the first moments of parameter groups whose beta1 is 0.

    With beta1 = 0 the first moment after a step is that step's gradient, and the next step
    replaces it before it is read (lerp with weight 1 - beta1 = 1 returns the gradient exactly),
    so storing it only adds one copy of the network to every snapshot.
    """
    dead = {i for group in state["param_groups"] if float(group["betas"][0]) == 0.0 for i in group["params"]}
    return {**state, "state": {i: ({k: v for k, v in s.items() if k != "exp_avg"} if i in dead else s)
                               for i, s in state["state"].items()}}


def expand_adam_state(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `compact_adam_state`: zero first moments where they were left out."""
    return {**state, "state": {i: (s if "exp_avg" in s or "exp_avg_sq" not in s
                                   else {**s, "exp_avg": torch.zeros_like(s["exp_avg_sq"])})
                               for i, s in state["state"].items()}}


def save_snapshot(path: Path, state: dict[str, Any]) -> Path:
    """Write a snapshot dict (see the module docstring) atomically; returns `path`."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"save_snapshot: state lacks {missing}")
    payload = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, **state}
    return write_atomic(Path(path), lambda handle: torch.save(payload, handle))


def load_snapshot(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a snapshot with `weights_only=True`; InvalidInput if the file is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"snapshot {path} does not exist",
                       hint="pass an existing network-snapshot-*.pt, or resume='auto' for the latest in the run folder")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a readable training snapshot ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})",
                           hint="it may be truncated or from another program; resume from another snapshot") from exc
    if not isinstance(state, dict) or state.get("format") != SNAPSHOT_FORMAT:
        raise InvalidInput(f"{path} is not a likeness training snapshot (no '{SNAPSHOT_FORMAT}' marker)")
    if state.get("version") not in READABLE_VERSIONS:
        raise InvalidInput(f"{path}: snapshot version {state.get('version')!r} is not supported "
                           f"(this code reads version {SNAPSHOT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise InvalidInput(f"{path}: snapshot lacks {missing}")
    return state


def snapshot_nimg(name: str) -> int | None:
    """The image count a snapshot file name stands for (whole kimg for old names), or None."""
    match = SNAPSHOT_RE.match(name)
    if match is None:
        return None
    return int(match.group(1)) * 1000 + int(match.group(2) or 0)


def iter_snapshots(run_dir: Path) -> Iterator[tuple[int, Path]]:
    """(image count, path) of every complete snapshot in `run_dir`; temporary files do not match."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        nimg = snapshot_nimg(entry.name)
        if nimg is not None and entry.is_file():
            yield nimg, entry


def find_latest_snapshot(run_dir: Path) -> Path | None:
    """The snapshot with the most images in `run_dir`, or None when there is none."""
    best = max(iter_snapshots(run_dir), default=None, key=lambda item: (item[0], item[1].name))
    return None if best is None else best[1]
