"""Shared training fixtures: real face photographs, centre-cropped, as a 16x16 dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageOps

from training.dataset import prepare_dataset
from training.loop import TrainConfig
from training.networks import NetworkConfig

TINY = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
FACE_FOLDERS = ("open", "closed", "crossed")


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


def tiny_config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(data=str(data), out_dir=str(out), network=NetworkConfig(**TINY), batch=4, total_kimg=0.024,
                  kimg_per_tick=0.008, snapshot_kimg=1.0, workers=0, grid_samples=4, threads=1)
    values.update(overrides)
    return TrainConfig(**values)
