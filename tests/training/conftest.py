"""Shared training fixtures: the tiny network, `tiny_config`, and small datasets.

`faces16` is real face photographs, centre-cropped, as a 16x16 dataset; `make_dataset` builds
six smooth random colour fields (fast, for the database and CLI tests). Test modules import the
helpers from here, never from one another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from training.config import TrainConfig
from training.dataset import PreparedDataset, prepare_dataset
from training.networks import NetworkConfig

# A small configuration that still has every kind of block (3 generator resolutions, 2 D blocks).
TINY: dict[str, Any] = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
FACE_FOLDERS = ("open", "closed", "crossed")


def tiny_network(**overrides: Any) -> NetworkConfig:
    return NetworkConfig(**{**TINY, **overrides})


def tiny_config(data: Path, out: Path, **overrides: Any) -> TrainConfig:
    """The tiny network on one CPU thread: two steps of four images, a tick and a snapshot after
    each (network-snapshot-000000.004.pt and network-snapshot-000000.008.pt). Tests that need
    another shape of run say so with overrides."""
    values: dict[str, Any] = dict(
        data=str(data), out_dir=str(out), network=tiny_network(), batch=4, total_kimg=0.008,
        kimg_per_tick=0.004, snapshot_kimg=0.004, workers=0, grid_samples=4, threads=1, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def tiny_process_args(folder: Path) -> list[str]:
    """`likeness train run` options for the tiny network (written to `folder`), with ticks far
    apart (so only live records show progress). Set OMP_NUM_THREADS=1 for one thread."""
    network = folder / "tiny-network.json"
    network.write_text(json.dumps(tiny_network().to_dict()), encoding="utf-8")
    return ["--network", str(network), "--tick-kimg", "1000", "--workers", "0"]


def centre_crops(testdata_dir: Path, dest: Path) -> Path:
    """Square centre crops of the face photographs in the shared test data, as PNGs."""
    dest.mkdir(parents=True)
    for folder in FACE_FOLDERS:
        for path in sorted((testdata_dir / "faces" / folder).iterdir()):
            with Image.open(path) as image:
                rgb = ImageOps.exif_transpose(image).convert("RGB")
            w, h = rgb.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            rgb.crop(box).save(dest / f"{folder}_{path.stem}.png")
    return dest


@pytest.fixture(scope="session")
def faces16(testdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces16")
    prepare_dataset(centre_crops(testdata_dir, root / "crops"), root / "data", resolution=16)
    return root / "data"


def make_crops(folder: Path, count: int = 6) -> Path:
    """Square 32x32 'crops' of smooth random colour fields."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((32, 32), Image.Resampling.BILINEAR).save(folder / f"crop{i}.png")
    return folder


def make_dataset(root: Path) -> PreparedDataset:
    return prepare_dataset(make_crops(root / "crops"), root / "data", resolution=16)


LABELLED_SPEC = """
name = "tiny labelled faces"
size = 24
resolution = 16
tolerance = 0.1
validation_share = 0.25
label_attributes = ["age_band", "expression"]
[quotas.age_band]
adult = 0.5
senior = 0.5
"""


@pytest.fixture
def labelled_checkpoint(env_workbench: Any, tmp_path: Path) -> int:
    """A checkpoint of one tiny step on a labelled dataset snapshot (age band and expression), so
    that it knows its label encoding; adults and seniors with neutral and smiling faces."""
    from sqlalchemy import select

    from labeling.encoding import label_encoding
    from likeness.models import Checkpoint
    from samples.labelled_pool import SitterPlan, add_pool
    from training.runs import start_run
    from training.snapshots import api as snapshots_api

    sitters = [SitterPlan(code=f"P{i:04d}", faces=8, person={"age_band": ("adult", "senior")[i % 2]},
                          frames={"expression": ["neutral", "smile"]}) for i in range(6)]
    with env_workbench.db.unit_of_work() as session:
        add_pool(session, env_workbench.blobs, sitters)
    built = snapshots_api.build(env_workbench, LABELLED_SPEC, actor="test", admin=True)
    export = snapshots_api.training_export(env_workbench, built.snapshot_id)
    c_dim = sum(slot.width for slot in label_encoding(["age_band", "expression"]))
    config = tiny_config(export.path, tmp_path / "labelled-run", network=tiny_network(c_dim=c_dim), total_kimg=0.004)
    run_id = start_run(env_workbench, config, name="tiny-labelled", snapshot_id=built.snapshot_id)
    with env_workbench.db.unit_of_work() as session:
        found = session.scalar(select(Checkpoint.id).where(Checkpoint.run_id == run_id).order_by(Checkpoint.id.desc()))
        assert found is not None
        return int(found)
