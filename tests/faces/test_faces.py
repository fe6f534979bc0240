"""Face finding, measuring and alignment on the shared real-photo test set.

``testdata_dir`` comes from tests/conftest.py (skips, or fails under LIKENESS_REQUIRE_TESTDATA=1).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from faces import detect as faces_module
from faces.align import align_face, ffhq_quad
from faces.detect import FaceFinding, find_faces
from faces.landmarks import EYE_POINTS, LEFT_EYE, LEFT_EYE_CORNERS, LEFT_IRIS, RIGHT_EYE, RIGHT_EYE_CORNERS, RIGHT_IRIS
from faces.measures import eye_aspect_ratio, eye_height, eye_width, face_axes, face_geometry, head_pose, iris_position
from qa.eyes import measure_face

EYES = EYE_POINTS


@functools.cache
def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    rgb.flags.writeable = False  # cached and shared between tests
    return rgb


@functools.cache
def _faces(path: Path) -> tuple[FaceFinding, ...]:
    return tuple(find_faces(_load(path)))


def _images(testdata_dir: Path, *labels: str) -> list[Path]:
    paths = sorted(p for label in labels for p in (testdata_dir / "faces" / label).iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert paths, f"no images under faces/{labels}"
    return paths


def _angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def _eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (landmarks[list(RIGHT_EYE), :2].mean(axis=0),
            landmarks[list(LEFT_EYE), :2].mean(axis=0))


@pytest.fixture(scope="session")
def astronaut(testdata_dir: Path) -> np.ndarray:
    return _load(testdata_dir / "faces/open/astronaut_eileen_collins.png")


# --- Counting faces --------------------------------------------------------------------------


def test_every_face_image_yields_a_face(testdata_dir: Path) -> None:
    missed = [p.name for p in _images(testdata_dir, "open", "closed", "crossed") if not _faces(p)]
    assert missed == []


def test_two_people_yields_exactly_two(testdata_dir: Path) -> None:
    found = _faces(testdata_dir / "faces/open/two_people_obama_biden.jpg")
    assert len(found) == 2
    assert found[0].box[0] != found[1].box[0]


def test_images_without_people_yield_nothing(testdata_dir: Path) -> None:
    found = {p.name: len(_faces(p)) for p in _images(testdata_dir, "none")}
    assert all(n == 0 for n in found.values()), found


def test_small_faces_in_exif_rotated_frame(testdata_dir: Path) -> None:
    path = testdata_dir / "faces/open/curie_lab_exif_orientation_6.jpg"
    upright = _faces(path)
    assert len(upright) >= 1
    assert abs(upright[0].roll) < 30
    with Image.open(path) as image:
        raw = find_faces(np.asarray(image.convert("RGB")))
    # Without the transpose the face lies on its side: missed, or found rolled by ~90 degrees.
    assert not raw or abs(_angle_diff(raw[0].roll, upright[0].roll)) > 45


def test_results_sorted_largest_first(testdata_dir: Path) -> None:
    found = _faces(testdata_dir / "faces/open/two_people_obama_biden.jpg")
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in found]
    assert areas == sorted(areas, reverse=True)


# --- Measures --------------------------------------------------------------------------------


def test_landmarks_shape_and_bounds(testdata_dir: Path) -> None:
    for path in _images(testdata_dir, "open", "closed", "crossed"):
        h, w = _load(path).shape[:2]
        for face in _faces(path):
            lm = face.landmarks
            assert lm.shape == (478, 3) and lm.dtype == np.float32
            assert np.isfinite(lm).all()
            assert face.box == pytest.approx(
                (lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()), abs=1e-3)
            assert 0.0 < face.score <= 1.0
            # Tight crops cut the chin or jaw, whose outline then runs past the frame; the
            # eyes are always in it, and so is every point of an uncut portrait.
            points = lm[:, :2] if path.parent.name == "open" else lm[list(EYES), :2]
            assert (points >= 0).all() and (points <= [w, h]).all(), path.name


def test_matched_pair_open_eyes_measure_wider(testdata_dir: Path) -> None:
    (opened,) = _faces(testdata_dir / "faces/open/selfie_open_eyes.jpg")
    (closed,) = _faces(testdata_dir / "faces/closed/selfie_closed_eyes.jpg")
    assert opened.ear_mean > 0.2
    assert opened.ear_mean > 2 * closed.ear_mean


def test_closed_eyes_have_low_ear_and_open_eyes_do_not(testdata_dir: Path) -> None:
    closed = {p.name: _faces(p)[0].ear_mean for p in _images(testdata_dir, "closed")}
    opened = {p.name: _faces(p)[0].ear_mean for p in _images(testdata_dir, "open")}
    assert all(ear < 0.15 for ear in closed.values()), closed
    assert min(opened.values()) > max(closed.values()), (opened, closed)


def test_iris_position_separates_strabismus_from_averted_gaze(testdata_dir: Path) -> None:
    def parallel_error(name: str) -> float:
        face = _faces(testdata_dir / "faces" / name)[0]
        return face.iris_right + face.iris_left - 1.0

    assert parallel_error("crossed/exotropia_man.jpg") < -0.2
    assert abs(parallel_error("crossed/obama_averted_gaze.jpg")) < 0.15
    assert abs(parallel_error("open/astronaut_eileen_collins.png")) < 0.15


@pytest.mark.parametrize("name", ["obama_official_portrait_2012.jpg",
                                  "astronaut_eileen_collins.png"])
def test_frontal_portrait_pose(testdata_dir: Path, name: str) -> None:
    face = _faces(testdata_dir / "faces/open" / name)[0]
    assert abs(face.yaw) < 15
    assert abs(face.pitch) < 15
    assert abs(face.roll) < 10


@pytest.mark.parametrize("turns", [1, 3])
def test_rotating_the_image_changes_roll_by_90(astronaut: np.ndarray, turns: int) -> None:
    upright = find_faces(astronaut)[0]
    rotated = find_faces(np.rot90(astronaut, turns))
    assert len(rotated) == 1
    change = _angle_diff(rotated[0].roll, upright.roll)
    # np.rot90 turns the picture counter-clockwise, which is a negative roll.
    assert change == pytest.approx(-90.0 if turns == 1 else 90.0, abs=15)


def test_landmarks_follow_image_scale(astronaut: np.ndarray) -> None:
    small = find_faces(astronaut)[0]
    big = find_faces(cv2.resize(astronaut, (6000, 6000), interpolation=cv2.INTER_CUBIC))
    assert len(big) == 1
    scale = 6000 / astronaut.shape[0]
    face_width = small.box[2] - small.box[0]
    error = np.linalg.norm(big[0].landmarks[:, :2] / scale - small.landmarks[:, :2], axis=1)
    assert error.mean() < 0.03 * face_width
    assert error.max() < 0.08 * face_width
    assert big[0].ear_mean == pytest.approx(small.ear_mean, abs=0.03)
    assert big[0].roll == pytest.approx(small.roll, abs=3)


def test_json_round_trip(astronaut: np.ndarray) -> None:
    face = find_faces(astronaut)[0]
    data = json.loads(json.dumps(face.to_json()))
    back = FaceFinding.from_json(data)
    np.testing.assert_allclose(back.landmarks, face.landmarks, atol=0.006)
    assert back.roll == pytest.approx(face.roll, abs=1e-3)
    assert back.box == pytest.approx(face.box, abs=0.006)
    nan_face = FaceFinding.from_json({**data, "yaw": None})
    assert math.isnan(nan_face.yaw)
    assert nan_face.to_json()["yaw"] is None


def test_falls_back_to_facemesh_when_detectors_miss(astronaut: np.ndarray,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    expected = find_faces(astronaut)[0]
    monkeypatch.setattr(faces_module, "_detect", lambda *args, **kwargs: [])
    found = find_faces(astronaut)
    assert len(found) == 1
    centre = found[0].landmarks[:, :2].mean(axis=0)
    assert np.linalg.norm(centre - expected.landmarks[:, :2].mean(axis=0)) < 5


# --- Alignment -------------------------------------------------------------------------------


def test_aligned_crop_has_ffhq_geometry(astronaut: np.ndarray) -> None:
    size = 256
    crop = align_face(astronaut, ffhq_quad(find_faces(astronaut)[0].landmarks), size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    found = find_faces(crop)
    assert len(found) == 1
    assert abs(found[0].roll) < 5
    left, right = _eye_centres(found[0].landmarks)
    assert abs((left[0] + right[0]) / 2 - size / 2) < 0.05 * size
    assert 0.35 * size < (left[1] + right[1]) / 2 < 0.55 * size


def test_quad_is_an_oriented_square(astronaut: np.ndarray) -> None:
    quad = ffhq_quad(find_faces(astronaut)[0].landmarks)
    assert quad.shape == (4, 2) and quad.dtype == np.float64
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    assert sides == pytest.approx(np.full(4, sides[0]), rel=1e-9)
    assert np.dot(quad[1] - quad[0], quad[3] - quad[0]) == pytest.approx(0.0, abs=1e-6)
    # Top-left, bottom-left, bottom-right, top-right for an upright face.
    assert quad[0, 1] < quad[1, 1] and quad[3, 0] > quad[0, 0]


def test_face_at_the_border_still_aligns(astronaut: np.ndarray) -> None:
    face = find_faces(astronaut)[0]
    x_cut = int(face.box[0]) + 5  # cut through the face: its quad reaches outside the frame
    edge = np.ascontiguousarray(astronaut[:, x_cut:])
    found = find_faces(edge)
    assert len(found) == 1
    quad = ffhq_quad(found[0].landmarks)
    assert quad[:, 0].min() < 0
    crop = align_face(edge, quad, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert crop.std() > 10  # picture content, not a blank fill


def test_align_large_frame_is_antialiased_and_matches(astronaut: np.ndarray) -> None:
    quad = ffhq_quad(find_faces(astronaut)[0].landmarks)
    reference = align_face(astronaut, quad, 128).astype(np.float64)
    big = cv2.resize(astronaut, (5120, 5120), interpolation=cv2.INTER_CUBIC)
    crop = align_face(big, quad * 10, 128).astype(np.float64)
    assert np.abs(crop - reference).mean() < 2.5  # a plain warp, unfiltered, gives ~3.6


# --- Degenerate input ------------------------------------------------------------------------


def test_black_and_tiny_images() -> None:
    assert find_faces(np.zeros((480, 640, 3), np.uint8)) == []
    assert find_faces(np.zeros((1, 1, 3), np.uint8)) == []
    assert find_faces(np.full((100, 3, 3), 128, np.uint8)) == []


def test_wrong_input_type_is_refused() -> None:
    with pytest.raises(ValueError):
        find_faces(np.zeros((100, 100), np.uint8))
    with pytest.raises(TypeError):
        find_faces(np.zeros((100, 100, 3), np.float32))


def test_degenerate_geometry_gives_nan() -> None:
    flat = np.zeros((478, 3), np.float32)
    assert math.isnan(eye_aspect_ratio(flat, RIGHT_EYE))
    assert math.isnan(iris_position(flat, 468, 33, 133))
    assert all(math.isnan(v) for v in head_pose(flat))
    broken = np.full((478, 3), np.nan, np.float32)
    assert math.isnan(eye_aspect_ratio(broken, LEFT_EYE))
    assert all(math.isnan(v) for v in head_pose(broken))
    measured = faces_module._measure(flat, 0.9)
    assert math.isnan(measured.yaw) and math.isnan(measured.ear_left)
    assert json.dumps(measured.to_json())  # nan never reaches JSON


# --- One measuring pass ----------------------------------------------------------------------


def _single_measures(pts: np.ndarray) -> dict[str, float]:
    """Each FaceGeometry field from the one-measure functions, as the eye detector took them."""
    axes = face_axes(pts)
    assert axes is not None
    frontal = pts.astype(np.float64) @ axes
    between = frontal[list(RIGHT_EYE)].mean(0)[:2] - frontal[list(LEFT_EYE)].mean(0)[:2]
    yaw, pitch, roll = head_pose(pts)
    return {
        "yaw": yaw, "pitch": pitch, "roll": roll,
        "ear_right": eye_aspect_ratio(pts, RIGHT_EYE), "ear_left": eye_aspect_ratio(pts, LEFT_EYE),
        "ear_right_frontal": eye_aspect_ratio(frontal, RIGHT_EYE), "ear_left_frontal": eye_aspect_ratio(frontal, LEFT_EYE),
        "iris_right": iris_position(pts, RIGHT_IRIS, *RIGHT_EYE_CORNERS),
        "iris_left": iris_position(pts, LEFT_IRIS, *LEFT_EYE_CORNERS),
        "eye_width_right": eye_width(pts, RIGHT_EYE), "eye_width_left": eye_width(pts, LEFT_EYE),
        "eye_height_right": eye_height(pts, RIGHT_EYE), "eye_height_left": eye_height(pts, LEFT_EYE),
        "eye_width_right_frontal": eye_width(frontal, RIGHT_EYE), "eye_width_left_frontal": eye_width(frontal, LEFT_EYE),
        "eye_spacing": float(np.linalg.norm(between)),
    }


def test_the_mesh_pass_measures_everything_once_and_the_same(testdata_dir: Path) -> None:
    findings = [f for p in _images(testdata_dir, "open", "closed", "crossed") for f in _faces(p)]
    assert len(findings) >= 20
    for finding in findings:
        geometry = finding.geometry
        assert geometry is not None and geometry.measures(finding.landmarks)
        expected = _single_measures(finding.landmarks)
        got = {name: getattr(geometry, name) for name in expected}
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        axes = face_axes(finding.landmarks)
        assert geometry.axes is not None and axes is not None
        np.testing.assert_allclose(geometry.axes, axes, atol=1e-12)
        carried = (finding.yaw, finding.pitch, finding.roll, finding.ear_right, finding.ear_left,
                   finding.iris_right, finding.iris_left)
        assert carried == (geometry.yaw, geometry.pitch, geometry.roll, geometry.ear_right, geometry.ear_left,
                           geometry.iris_right, geometry.iris_left)


def test_geometry_of_degenerate_landmarks_is_nan_not_an_error() -> None:
    flat = face_geometry(np.zeros((478, 3), np.float32))
    assert flat.axes is None and math.isnan(flat.yaw) and math.isnan(flat.ear_left_frontal)
    assert flat.eye_width_right == 0.0 and math.isnan(flat.eye_height_right) and math.isnan(flat.iris_left)
    huge = face_geometry(np.full((478, 3), 3e38, np.float32) * np.linspace(0, 1, 478, dtype=np.float32)[:, None])
    assert isinstance(huge.yaw, float)


def test_the_eye_detector_reads_the_mesh_measures_of_these_landmarks_only(astronaut: np.ndarray) -> None:
    finding = find_faces(astronaut)[0]
    assert finding.geometry is not None
    fresh = measure_face(dataclasses.replace(finding, geometry=None))
    assert measure_face(finding) == fresh  # the carried measures are the ones it would take
    # A geometry is read as it is when it belongs to the landmarks...
    marked = dataclasses.replace(finding.geometry, ear_right_frontal=finding.geometry.ear_right_frontal + 0.05)
    reused = measure_face(dataclasses.replace(finding, geometry=marked))
    assert reused.ear_right_corrected == pytest.approx(fresh.ear_right_corrected + 0.05)
    # ...and ignored once the landmarks are others, replaced or changed in place.
    moved = finding.landmarks.copy()
    moved[:, 0] += 7.0
    assert measure_face(dataclasses.replace(finding, landmarks=moved, geometry=marked)).ear_right_corrected == \
        pytest.approx(fresh.ear_right_corrected)
    edited = finding.landmarks.copy()
    held = dataclasses.replace(finding, landmarks=edited, geometry=marked)
    assert measure_face(held).ear_right_corrected == pytest.approx(fresh.ear_right_corrected + 0.05)
    edited[RIGHT_EYE[1], 1] -= 4.0  # the upper lid raised in the finding's own array
    remeasured = measure_face(held)
    assert remeasured == measure_face(dataclasses.replace(finding, landmarks=edited.copy(), geometry=None))
    assert remeasured.ear_right_corrected > fresh.ear_right_corrected + 0.08
    # Stored findings carry no geometry: they are measured from their landmarks.
    assert FaceFinding.from_json(finding.to_json()).geometry is None


def test_landmarks_read_off_the_wire_equal_the_point_by_point_read(astronaut: np.ndarray) -> None:
    from mediapipe.framework.formats import landmark_pb2

    with faces_module._graphs_lock:
        result = faces_module._run(faces_module._graph("mesh1", 0.5), np.ascontiguousarray(astronaut))
    face = result.multi_face_landmarks[0]
    by_point = np.array([(p.x, p.y, p.z) for p in face.landmark])
    np.testing.assert_array_equal(faces_module._landmark_array(face), by_point)
    # Another layout (visibility set on a point) is read point by point, still right.
    other = landmark_pb2.NormalizedLandmarkList()
    other.CopyFrom(face)
    other.landmark[5].visibility = 0.5
    np.testing.assert_array_equal(faces_module._landmark_array(other), by_point)
    assert faces_module._landmark_array(landmark_pb2.NormalizedLandmarkList()).shape == (0, 3)


def test_an_aligned_crop_is_meshed_as_it_is(astronaut: np.ndarray) -> None:
    crop = align_face(astronaut, ffhq_quad(find_faces(astronaut)[0].landmarks), 1024)
    finding = faces_module.mesh_aligned_face(crop)
    assert finding is not None
    with faces_module._graphs_lock:
        direct = faces_module._mesh(crop, faces_module._graph("mesh1", 0.5))[0].astype(np.float32)
    np.testing.assert_array_equal(finding.landmarks, direct)  # no shrunk copy in between


def test_the_mesh_pass_reads_what_facemesh_process_gives(astronaut: np.ndarray) -> None:
    crop = align_face(astronaut, ffhq_quad(find_faces(astronaut)[0].landmarks), 1024)
    assert crop.flags.writeable
    with faces_module._graphs_lock:
        graph = faces_module._graph("mesh1", 0.5)
        wire = faces_module._mesh_wire(graph, crop)
        faces = graph.process(crop).multi_face_landmarks
        processed = [face.SerializeToString() for face in faces]
        # A graph without the pinned MediaPipe's internals goes through process() itself.
        plain = type("Plain", (), {"process": staticmethod(graph.process)})()
        through_process = faces_module._mesh_wire(plain, crop)
        blank = faces_module._mesh_wire(graph, np.full((256, 256, 3), 128, np.uint8))
    assert len(wire) == 1 and wire == processed == through_process and blank == []
    by_point = np.array([(p.x, p.y, p.z) for p in faces[0].landmark])
    np.testing.assert_array_equal(faces_module._wire_landmarks(wire[0]), by_point)
    assert crop.flags.writeable  # the caller's array is lent read-only, not changed
