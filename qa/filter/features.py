"""The filter's inputs: the automatic checks stored on a generated face, and a few statistics of
its pixels.

Each check gives two numbers, its value and whether it was flagged; a check an image lacks is
NaN (the model handles missing values), so a filter trained before a new check existed still
reads every image. The pixel statistics (colour, contrast, sharpness on a 64 px grey view) are
no longer learned from: they say more about the photograph (its light, its backdrop) than about
the face, so a model learns who rather than what, and on faces of new people they mislead (on
the proxy set's held-out sources, reject precision fell below 95 % with them). They are still
computed for versions that were trained on them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image

from qa.generated.checks import IMAGE_CHECKS

# Which way each check's value points, for the model's monotonic constraints: a worse value
# never makes a face more likely good. Flags always point down; a value of a check not named
# here (the eye verdict's confidence, one added later) is left free.
HIGHER_IS_BETTER = frozenset({"face_found", "discriminator", "realism"})
HIGHER_IS_WORSE = frozenset({"plausible", *IMAGE_CHECKS})

PIXEL_FEATURES = ("pixels.mean_r", "pixels.mean_g", "pixels.mean_b", "pixels.contrast", "pixels.sharpness")
VIEW_SIDE = 64


def feature_names(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The features of a training set: two per check any image has (sorted)."""
    names = sorted({name for entry in checks for name in entry})
    return [f"{name}.{part}" for name in names for part in ("value", "flagged")]


def direction(name: str) -> int:
    """+1 where a larger feature means a likelier good face, -1 where a likelier bad one, 0 free."""
    check, _, part = name.rpartition(".")
    if part == "flagged":
        return -1
    if part == "value" and check in HIGHER_IS_BETTER:
        return 1
    if part == "value" and check in HIGHER_IS_WORSE:
        return -1
    return 0


def pixel_statistics(rgb: np.ndarray) -> list[float]:
    """Mean colour (0..1), contrast (grey standard deviation) and sharpness (log variance of
    the Laplacian) of a small view of the image."""
    view = cv2.resize(rgb, (VIEW_SIDE, VIEW_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    grey = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    sharpness = float(np.log1p(cv2.Laplacian(grey, cv2.CV_32F).var() * 1e4))
    mean = view.reshape(-1, 3).mean(axis=0)
    return [float(mean[0]), float(mean[1]), float(mean[2]), float(grey.std()), sharpness]


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def row(names: Sequence[str], checks: Mapping[str, Any], rgb: np.ndarray) -> list[float]:
    """One image's feature vector in the order of `names` (pixel statistics only where a version
    trained on them asks)."""
    pixels = dict(zip(PIXEL_FEATURES, pixel_statistics(rgb), strict=True)) if set(PIXEL_FEATURES) & set(names) else {}
    values: list[float] = []
    for name in names:
        if name in pixels:
            values.append(pixels[name])
            continue
        check, _, part = name.rpartition(".")
        entry = checks.get(check)
        if not isinstance(entry, Mapping):
            values.append(float("nan"))
        elif part == "flagged":
            values.append(1.0 if entry.get("flagged") else 0.0)
        else:
            value = entry.get("value")
            values.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan"))
    return values


def matrix(names: Sequence[str], items: Iterable[tuple[Mapping[str, Any], np.ndarray]]) -> np.ndarray:
    rows = [row(names, checks, rgb) for checks, rgb in items]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))
