"""Shot QA: measured checks on every ingested frame, each with its value, threshold and verdict.

Sharpness and exposure are measured on the face (the aligned crop); white balance and exposure
drift are measured on the whole frame (its preview) against the shoot's reference frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

ANALYSIS_SIZE = 256  # crops are resampled to this side so sharpness compares across crop sizes
FACE_WINDOW = 0.5  # central share of the aligned crop: eyes, nose and mouth, no background
QA_VERSION = 1
EYES_PASS = ("open", "looking_away")


@dataclass(frozen=True)
class ShotQaThresholds:
    """Pass limits for shot QA. One place; the eye thresholds live in qa/eye_thresholds.json."""

    # Variance of the Laplacian on the 256 px face window (grey levels²). Its scale depends on
    # the face and the lighting, so a frame must also reach a share of its session's median.
    min_sharpness: float = 15.0
    min_relative_sharpness: float = 0.5
    max_clipped_highlights: float = 0.02  # share of face pixels at 250+ in any channel
    max_clipped_shadows: float = 0.05  # share of face pixels with luma at 5 or below
    min_face_luma: float = 60.0  # mean face luma, 0-255
    max_face_luma: float = 210.0
    max_wb_shift: float = 0.15  # |log2| change of R/G or B/G against the reference frame
    max_exposure_shift: float = 0.5  # |stops| of mean luminance against the reference frame
    max_yaw: float = 30.0  # degrees
    max_pitch: float = 20.0
    max_roll: float = 15.0
    # Aligned crop side over the face quad's side in the frame. Beyond 2x three of every four
    # crop pixels are interpolation: the face is too small for the requested aligned size.
    max_crop_upscale: float = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    value: float | str | None
    threshold: str
    passed: bool | None  # None: not applicable (no reference frame, no face)
    detail: str = ""


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def face_window(crop: np.ndarray, upscale: float = 1.0) -> np.ndarray:
    """The face part of an aligned crop, shrunk to ANALYSIS_SIZE so that measures compare across
    crop sizes, and further to the face's own resolution when the crop was enlarged from fewer
    pixels (`upscale` > 1): interpolation adds no detail, and sharpness must not count it.
    Never enlarged."""
    side = crop.shape[0]
    margin = int(side * (1 - FACE_WINDOW) / 2)
    window = crop[margin : side - margin, margin : side - margin]
    target = max(16, min(window.shape[0], round(ANALYSIS_SIZE / max(1.0, upscale))))
    if window.shape[0] == target:
        return np.ascontiguousarray(window)
    interpolation = cv2.INTER_AREA if window.shape[0] > target else cv2.INTER_LINEAR
    return cv2.resize(window, (target, target), interpolation=interpolation)


def sharpness(face: np.ndarray) -> float:
    """Variance of the Laplacian of a face window."""
    return _laplacian_variance(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))


def _laplacian_variance(grey: np.ndarray) -> float:
    # Mean square less squared mean, both summed in double: meanStdDev's value to float noise
    # at a third of its time on int16.
    laplacian = cv2.Laplacian(grey, cv2.CV_16S)
    mean = cv2.sumElems(laplacian)[0] / laplacian.size
    return max(0.0, cv2.norm(laplacian, cv2.NORM_L2SQR) / laplacian.size - mean * mean)


@dataclass(frozen=True)
class FaceTone:
    """Sharpness and exposure of a face window, from one grey conversion of it."""

    sharpness: float  # variance of the Laplacian of its luma
    highlights: float  # share of pixels at 250 or more in any channel
    shadows: float  # share of pixels with luma at 5 or below
    luma: float  # mean luma, 0-255

    @classmethod
    def of(cls, face: np.ndarray) -> FaceTone:
        luma = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
        pixels = luma.size
        # A pixel is clipped when any channel is 250 or more: its channels' 0/255 marks give it a
        # non-zero grey (at least 29 of 255), an unclipped pixel's give 0. Two plain passes cost
        # less than one three-channel range test.
        marks = cv2.threshold(face, 249, 255, cv2.THRESH_BINARY)[1]
        clipped = cv2.countNonZero(cv2.cvtColor(marks, cv2.COLOR_RGB2GRAY))
        dark = cv2.countNonZero(cv2.threshold(luma, 5, 255, cv2.THRESH_BINARY_INV)[1])  # luma at 5 or below
        return cls(
            sharpness=_laplacian_variance(luma),
            highlights=clipped / pixels,
            shadows=dark / pixels,
            luma=cv2.mean(luma)[0],
        )


TONE_ROWS = 256


@dataclass(frozen=True)
class FrameTone:
    """Whole-frame colour and brightness, compared against the reference frame."""

    log_rg: float
    log_bg: float
    log_luma: float

    @classmethod
    def of(cls, rgb: np.ndarray) -> FrameTone:
        # Every k-th row (at least TONE_ROWS of them): a frame's mean colour needs no more, and
        # reading the whole preview cost more than every other shot check together.
        step = max(1, rgb.shape[0] // TONE_ROWS)
        rows = np.ascontiguousarray(rgb)[::step]   # rows of a C-contiguous image: OpenCV takes them as they are
        r, g, b = (value + 1e-6 for value in cv2.mean(rows)[:3])
        return cls(math.log2(r / g), math.log2(b / g), math.log2(0.299 * r + 0.587 * g + 0.114 * b))


def measure_shot(
    *,
    face: np.ndarray | None,
    preview: np.ndarray,
    pose: tuple[float | None, float | None, float | None] | None,
    eyes: dict[str, Any] | None,
    reference: FrameTone | None,
    shoot_sharpness: float | None = None,
    thresholds: ShotQaThresholds = ShotQaThresholds(),
    crop_upscale: float | None = None,
) -> list[Check]:
    """Every check for one frame; `face` is the aligned crop's face_window(). A frame without a
    face gets the frame-level checks only. `crop_upscale` (crop side over the face quad's side
    in the frame, see qa.api.crop_upscale) adds the face-resolution check."""
    t = thresholds
    checks: list[Check] = []
    if face is not None:
        measured = FaceTone.of(face)
        sharp, highlights, shadows, mean_luma = measured.sharpness, measured.highlights, measured.shadows, measured.luma
        floor = t.min_sharpness
        if shoot_sharpness:
            floor = max(floor, t.min_relative_sharpness * shoot_sharpness)
        checks += [
            Check("sharpness", round(sharp, 1), f">= {floor:.1f}", sharp >= floor,
                  f"session median {shoot_sharpness:.1f}" if shoot_sharpness else ""),
            Check("clipped_highlights", round(highlights, 4), f"<= {t.max_clipped_highlights}", highlights <= t.max_clipped_highlights),
            Check("clipped_shadows", round(shadows, 4), f"<= {t.max_clipped_shadows}", shadows <= t.max_clipped_shadows),
            Check("face_luma", round(mean_luma, 1), f"{t.min_face_luma}..{t.max_face_luma}", t.min_face_luma <= mean_luma <= t.max_face_luma),
        ]
    if crop_upscale is not None:
        ok = None if not math.isfinite(crop_upscale) else crop_upscale <= t.max_crop_upscale
        checks.append(Check(
            "face_resolution", round(crop_upscale, 2) if ok is not None else None, f"<= {t.max_crop_upscale}", ok,
            f"the aligned crop enlarges the face {crop_upscale:.1f}x: too small for the requested aligned size"
            if ok is False else "",
        ))
    if pose is not None:
        for name, value, limit in zip(("yaw", "pitch", "roll"), pose, (t.max_yaw, t.max_pitch, t.max_roll)):
            ok = None if value is None or math.isnan(value) else abs(value) <= limit
            checks.append(Check(f"head_{name}", None if ok is None or value is None else round(value, 1), f"|x| <= {limit}", ok))
    if eyes is not None:
        state = eyes.get("state")
        undetermined = state == "undetermined"
        # Gaze to one side is a pose, not a defect; shut, half-shut or crossed eyes are.
        checks.append(
            Check("eyes", state, "open or looking_away", None if undetermined else state in EYES_PASS, eyes.get("reason") or "")
        )
    if reference is None:
        checks += [
            Check("white_balance_shift", None, f"<= {t.max_wb_shift}", None, "the shoot has no reference frame"),
            Check("exposure_shift", None, f"<= {t.max_exposure_shift}", None, "the shoot has no reference frame"),
        ]
    else:
        tone = FrameTone.of(preview)
        wb = max(abs(tone.log_rg - reference.log_rg), abs(tone.log_bg - reference.log_bg))
        ev = tone.log_luma - reference.log_luma
        checks += [
            Check("white_balance_shift", round(wb, 3), f"<= {t.max_wb_shift}", wb <= t.max_wb_shift),
            Check("exposure_shift", round(ev, 2), f"|x| <= {t.max_exposure_shift}", abs(ev) <= t.max_exposure_shift),
        ]
    return checks


def summarise(checks: list[Check]) -> dict[str, Any]:
    failed = [c.name for c in checks if c.passed is False]
    return {"version": QA_VERSION, "passed": not failed, "failed": failed, "checks": [asdict(c) for c in checks]}
