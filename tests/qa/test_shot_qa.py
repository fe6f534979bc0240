from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import pytest

from faces.align import align_face, ffhq_quad
from faces.detect import find_faces
from ingest.decode import decode_frame
from qa.shot_qa import Check, FrameTone, ShotQaThresholds, face_window, measure_shot, summarise
from samples.dng import write_dng
from samples.shoot import render_portrait_frame


@pytest.fixture(scope="module")
def studio_frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """A real portrait through the real pipeline: DNG → LibRaw decode → face → aligned crop."""
    from skimage import data

    path = tmp_path_factory.mktemp("qa") / "frame.dng"
    frame = render_portrait_frame(
        data.astronaut(), (1536, 1024), face_centre=(0.5, 0.42), face_width=0.3, rng=np.random.default_rng(0)
    )
    write_dng(path, frame)
    rgb = decode_frame(path, max_pixels=10**9).rgb
    (face,) = find_faces(rgb)
    return rgb, align_face(rgb, ffhq_quad(face.landmarks), 512)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _num(check: Check) -> float:
    return cast(float, check.value)


def _overexpose(rgb: np.ndarray, stops: float) -> np.ndarray:
    linear = (rgb / 255.0) ** 2.2 * 2**stops
    return (np.clip(linear, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


def test_a_good_frame_passes_every_check(studio_frame) -> None:
    rgb, crop = studio_frame
    checks = measure_shot(face=face_window(crop), preview=rgb, pose=(2.0, -3.0, 1.0), eyes={"state": "open"},
                          reference=FrameTone.of(rgb), shoot_sharpness=None)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert summarise(checks)["passed"]


def test_degraded_frames_fail_the_right_checks(studio_frame) -> None:
    rgb, crop = studio_frame
    reference = FrameTone.of(rgb)
    sharp = _by_name(measure_shot(face=face_window(crop), preview=rgb, pose=None, eyes=None, reference=reference))["sharpness"]

    blurred = cv2.GaussianBlur(crop, (0, 0), 4)
    checks = _by_name(measure_shot(face=face_window(blurred), preview=rgb, pose=None, eyes=None, reference=reference))
    assert checks["sharpness"].passed is False and _num(checks["sharpness"]) < _num(sharp) / 2
    assert checks["white_balance_shift"].passed and checks["exposure_shift"].passed

    # Slightly soft: passes the absolute floor, but not in a session whose frames are much sharper.
    soft = cv2.GaussianBlur(crop, (0, 0), 0.9)
    alone = _by_name(measure_shot(face=face_window(soft), preview=rgb, pose=None, eyes=None, reference=None))["sharpness"]
    assert alone.passed and _num(alone) < _num(sharp)
    in_session = _by_name(measure_shot(face=face_window(soft), preview=rgb, pose=None, eyes=None, reference=None,
                                       shoot_sharpness=2.5 * _num(alone)))["sharpness"]
    assert in_session.passed is False and "session median" in in_session.detail

    bright = _by_name(measure_shot(face=face_window(_overexpose(crop, 2)), preview=_overexpose(rgb, 2), pose=None, eyes=None,
                                   reference=reference))
    assert bright["clipped_highlights"].passed is False
    assert bright["exposure_shift"].passed is False and _num(bright["exposure_shift"]) > 0.5

    cast = rgb.astype(np.float64) * [1.35, 1.0, 0.85]
    warm = _by_name(measure_shot(face=face_window(crop), preview=np.clip(cast, 0, 255).astype(np.uint8), pose=None, eyes=None,
                                 reference=reference))
    assert warm["white_balance_shift"].passed is False and warm["exposure_shift"].passed

    dark = _by_name(measure_shot(face=face_window((crop * 0.15).astype(np.uint8)), preview=rgb, pose=None, eyes=None, reference=None))
    assert dark["face_luma"].passed is False


def test_pose_and_eyes_checks() -> None:
    preview = np.full((64, 96, 3), 120, np.uint8)
    checks = _by_name(measure_shot(face=None, preview=preview, pose=(45.0, 0.0, float("nan")),
                                   eyes={"state": "closed"}, reference=None))
    assert checks["head_yaw"].passed is False and checks["head_pitch"].passed
    assert checks["head_roll"].passed is None  # unmeasurable is not a pass
    assert checks["eyes"].passed is False
    assert checks["white_balance_shift"].passed is None and "reference" in checks["white_balance_shift"].detail
    looking = _by_name(measure_shot(face=None, preview=preview, pose=None, eyes={"state": "looking_away"}, reference=None))
    assert looking["eyes"].passed
    summary = summarise(list(checks.values()))
    assert not summary["passed"] and summary["failed"] == ["head_yaw", "eyes"]


def test_face_too_small_for_the_aligned_size(studio_frame) -> None:
    """The same face aligned at growing sizes: once the crop enlarges it past the limit, the
    face-resolution check fails with its value and threshold."""
    rgb, _ = studio_frame
    (face,) = find_faces(rgb)
    quad = ffhq_quad(face.landmarks)
    side = float(np.linalg.norm(quad[3] - quad[0]))
    limit = ShotQaThresholds().max_crop_upscale
    for size in (256, 512, 1024, 2048):
        upscale = size / side
        checks = _by_name(measure_shot(face=face_window(align_face(rgb, quad, size), upscale), preview=rgb, pose=None,
                                       eyes=None, reference=None, crop_upscale=upscale))
        check = checks["face_resolution"]
        assert check.value == round(upscale, 2) and check.threshold == f"<= {limit}"
        assert check.passed is (upscale <= limit), (size, side)
        if not check.passed:
            assert "too small for the requested aligned size" in check.detail
            assert "face_resolution" in summarise(list(checks.values()))["failed"]
    assert 512 / side <= limit < 2048 / side  # both outcomes were seen
    # Without the crop's scale the check is not made (old callers), and an unknown scale is not a pass.
    assert "face_resolution" not in _by_name(measure_shot(face=None, preview=rgb, pose=None, eyes=None, reference=None))
    unknown = _by_name(measure_shot(face=None, preview=rgb, pose=None, eyes=None, reference=None,
                                    crop_upscale=float("nan")))["face_resolution"]
    assert unknown.passed is None and unknown.value is None
