"""The eye-state detector on the shared real photographs, on transformed copies of them, on
broken landmarks, and its calibration.

``testdata_dir`` comes from tests/conftest.py (skips, or fails under LIKENESS_REQUIRE_TESTDATA=1).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from faces.align import align_face, ffhq_quad
from faces.detect import FaceFinding, find_faces, mesh_aligned_face
from faces.landmarks import LEFT_EYE, RIGHT_EYE, RIGHT_IRIS
from likeness.errors import InvalidInput, NotFound
from qa.calibrate import (
    DEFAULT_PRIORS,
    LabelledMeasures,
    NoiseReading,
    calibrate_eye_thresholds,
    fit_noise,
    gaze_support,
    jitter,
    measure_labelled,
    shrink,
    write_thresholds,
)
from qa.evaluate import EvaluationReport, evaluate
from qa.eyes import (
    EyeMeasures,
    EyeState,
    EyeVerdict,
    classify_face,
    classify_image,
    image_verdict,
    load_thresholds,
    load_upright,
    worst,
)
from tests.cli_runner import run_cli

EXOTROPIA = "faces/crossed/exotropia_man.jpg"
AVERTED = "faces/crossed/obama_averted_gaze.jpg"
SELFIE_OPEN = "faces/open/selfie_open_eyes.jpg"
SELFIE_CLOSED = "faces/closed/selfie_closed_eyes.jpg"
ASTRONAUT = "faces/open/astronaut_eileen_collins.png"
CEW_GLASSES = "faces/closed/cew_closed_eye_1786_glasses.jpg"
HOPPER = "faces/open/grace_hopper_128px.jpg"


@functools.cache
def _upright(path: Path) -> np.ndarray:
    rgb = load_upright(path)
    rgb.flags.writeable = False  # cached and shared between tests
    return rgb


@functools.cache
def _largest_face(path: Path) -> FaceFinding:
    faces = find_faces(_upright(path))
    assert faces, f"no face found in {path}"
    return faces[0]


def _state(rgb: np.ndarray) -> EyeState | None:
    return image_verdict(classify_image(np.ascontiguousarray(rgb)))


def _with_landmarks(finding: FaceFinding, landmarks: np.ndarray) -> FaceFinding:
    box = (float(np.nanmin(landmarks[:, 0])), float(np.nanmin(landmarks[:, 1])),
           float(np.nanmax(landmarks[:, 0])), float(np.nanmax(landmarks[:, 1])))
    return dataclasses.replace(finding, landmarks=landmarks.astype(np.float32), box=box)


@pytest.fixture(scope="module")
def labels(testdata_dir: Path) -> Path:
    return testdata_dir / "labels.csv"


@pytest.fixture(scope="module")
def report(labels: Path) -> EvaluationReport:
    return evaluate(labels)


@pytest.fixture(scope="module")
def labelled_measures(labels: Path) -> list[LabelledMeasures]:
    return measure_labelled(labels)


# --- The shared labelled set -------------------------------------------------------------------


def test_closed_eyes_found_and_no_open_eye_called_closed(report: EvaluationReport) -> None:
    closed = report.score("closed")
    assert closed.support == 9
    assert closed.recall is not None and closed.recall >= 0.95, report.misclassified
    assert report.confusion.get(("open", "closed"), 0) == 0
    # Per face too: no face of an open-eyed image is called closed.
    open_faces = [v for r in report.results if r.truth == "open" for v in r.verdicts]
    assert len(open_faces) >= 8
    assert all(v.state is not EyeState.closed for v in open_faces)


def test_crossed_folder_separated_from_open_eyes(report: EvaluationReport) -> None:
    by_path = {r.relative: r for r in report.results}
    assert by_path[EXOTROPIA].predicted == "crossed", by_path[EXOTROPIA].verdicts
    assert by_path[AVERTED].predicted == "looking_away", by_path[AVERTED].verdicts
    assert report.score("crossed").precision == 1.0
    assert report.score("looking_away").precision == 1.0


def test_no_face_on_images_without_people(report: EvaluationReport) -> None:
    assert report.score("none").support == 5
    assert report.faces_on_none == []


def test_every_open_image_is_open_and_the_pair_gives_two_faces(report: EvaluationReport) -> None:
    # Every open-eyed image is open, except where the eyes are too few pixels to judge the gaze:
    # those are undetermined with the reason, never a wrong state.
    support = load_thresholds().min_gaze_eye_px
    for r in report.results:
        if r.truth != "open":
            continue
        small = [v for v in r.verdicts if v.measures is not None and v.measures.eye_px < support]
        if small:
            assert r.predicted == "undetermined", r
            assert all(v.state is EyeState.undetermined and "too small to judge gaze" in (v.reason or "")
                       for v in small), r
        else:
            assert r.predicted == "open", r
    assert [r.relative for r in report.results if r.truth == "open" and r.predicted != "open"] == [HOPPER]
    pair = next(r for r in report.results if r.relative.endswith("two_people_obama_biden.jpg"))
    assert [v.state for v in pair.verdicts] == [EyeState.open, EyeState.open]
    assert all(v.box is not None for v in pair.verdicts)


def test_raw_rows_are_ignored(report: EvaluationReport, labels: Path) -> None:
    rows = labels.read_text(encoding="utf-8").splitlines()[1:]
    face_rows = [r for r in rows if r.split(",")[1] in {"open", "closed", "crossed", "averted_gaze", "none"}]
    assert len(report.results) == len(face_rows) == 24
    assert not any(r.relative.startswith("raw/") for r in report.results)


def test_cli_prints_confusion_matrix_and_scores(labels: Path) -> None:
    result = run_cli("qa", "evaluate-eyes", str(labels))
    assert result.exit_code == 0, result.output
    assert "Confusion matrix" in result.output
    for word in ("precision", "recall", "open", "closed", "crossed", "looking_away", "none", "accuracy"):
        assert word in result.output
    rows = [line.replace("│", " ").split() for line in result.output.splitlines() if line.startswith("│ closed ")]
    matrix_row, score_row = rows  # one row in the matrix, one in the per-class table
    assert "9" in matrix_row
    assert score_row[-2:] == ["1.00", "1.00"]  # closed precision and recall


def test_cli_lists_misclassified_files(labels: Path, tmp_path: Path) -> None:
    # Demanding wider eyes than a smiling face shows turns some open faces half-closed.
    strict = dataclasses.replace(load_thresholds(), ear_open=0.25)
    path = write_thresholds(strict, tmp_path / "strict.json")
    wrong = {r.relative for r in evaluate(labels, thresholds=strict).misclassified}
    assert "faces/open/obama_official_portrait_2012.jpg" in wrong
    result = run_cli("qa", "evaluate-eyes", str(labels), "--thresholds", str(path))
    assert result.exit_code == 0, result.output
    assert "Misclassified" in result.output and "eye aspect ratio" in result.output


def test_cli_reports_a_missing_labels_file_in_one_line(tmp_path: Path) -> None:
    result = run_cli("qa", "evaluate-eyes", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output


# --- Transformed copies of the labelled images --------------------------------------------------

# exif_transpose undoes Orientation 3 with a 180 degree turn, 6 with 90 degrees clockwise and 8
# with 90 degrees counter-clockwise; the stored pixels are the upright ones turned the other way.
_STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize(("relative", "orientation", "expected"), [
    (EXOTROPIA, 6, EyeState.crossed), (SELFIE_CLOSED, 8, EyeState.closed),
    (AVERTED, 3, EyeState.looking_away), (SELFIE_OPEN, 6, EyeState.open),
])
def test_exif_rotated_copy_is_classified_upright(testdata_dir: Path, tmp_path: Path, relative: str,
                                                 orientation: int, expected: EyeState) -> None:
    upright = _upright(testdata_dir / relative)
    exif = Image.Exif()
    exif[0x0112] = orientation
    copy = tmp_path / "rotated.jpg"
    Image.fromarray(upright).transpose(_STORE[orientation]).save(copy, quality=95, exif=exif)
    with Image.open(copy) as stored:
        assert stored.getexif()[0x0112] == orientation
        if orientation != 3:
            assert stored.size == (upright.shape[0], upright.shape[1])  # really stored sideways
    loaded = load_upright(copy)
    assert loaded.shape == upright.shape
    assert _state(loaded) is expected


@pytest.mark.parametrize(("relative", "expected"), [
    (SELFIE_CLOSED, EyeState.closed), ("faces/closed/cew_closed_eye_0267.jpg", EyeState.closed),
    (CEW_GLASSES, EyeState.closed), (SELFIE_OPEN, EyeState.open),
    # 512 px -> 160 px leaves the astronaut's eyes ~6 px wide: lids open, gaze not supported.
    (ASTRONAUT, EyeState.undetermined),
    (EXOTROPIA, EyeState.crossed), (AVERTED, EyeState.looking_away),
])
def test_downscaled_to_small_faces(testdata_dir: Path, relative: str, expected: EyeState) -> None:
    upright = _upright(testdata_dir / relative)
    h, w = upright.shape[:2]
    small = np.asarray(Image.fromarray(upright).resize((160, round(160 * h / w)), Image.Resampling.LANCZOS))
    before = classify_face(_largest_face(testdata_dir / relative)).measures
    for frame in (small, _on_canvas(small)):  # alone, then as a small part of a large frame
        verdicts = classify_image(frame)
        assert verdicts, f"no face found at 160 px in a {frame.shape[1]} px frame"
        m = verdicts[0].measures
        assert m is not None and before is not None and m.eye_px < 0.85 * before.eye_px
        assert image_verdict(verdicts) is expected, verdicts


def _on_canvas(image: np.ndarray, size: tuple[int, int] = (1280, 960)) -> np.ndarray:
    canvas = np.full((size[1], size[0], 3), 128, np.uint8)
    y, x = size[1] // 3, size[0] // 2
    canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    return canvas


def test_tiny_image_face_is_found_and_its_gaze_not_judged(testdata_dir: Path) -> None:
    # 128 px portrait: the eyes are ~9 px wide, the iris ~4 px. Open lids, but no gaze verdict.
    verdicts = classify_image(_upright(testdata_dir / HOPPER))
    assert [v.state for v in verdicts] == [EyeState.undetermined]
    assert verdicts[0].reason == "eye 9 px wide: too small to judge gaze"
    m = verdicts[0].measures
    assert m is not None and m.openness > load_thresholds().ear_open  # the lids were measured open


def test_eyes_too_small_to_measure_are_undetermined(testdata_dir: Path) -> None:
    upright = _upright(testdata_dir / "faces/open/grace_hopper_128px.jpg")
    verdicts = classify_image(np.asarray(Image.fromarray(upright).resize((64, 64), Image.Resampling.LANCZOS)))
    assert verdicts and all(v.state is EyeState.undetermined and "too small" in (v.reason or "") for v in verdicts)


@pytest.mark.parametrize(("relative", "expected"), [
    (EXOTROPIA, EyeState.crossed), (AVERTED, EyeState.looking_away), (SELFIE_CLOSED, EyeState.closed),
    (SELFIE_OPEN, EyeState.open),
])
def test_mirrored_copy_keeps_its_state(testdata_dir: Path, relative: str, expected: EyeState) -> None:
    original = classify_image(_upright(testdata_dir / relative))[0]
    mirrored = classify_image(np.ascontiguousarray(_upright(testdata_dir / relative)[:, ::-1]))[0]
    assert mirrored.state is expected
    assert original.measures is not None and mirrored.measures is not None
    if expected is EyeState.looking_away:  # the gaze changes side with the image
        assert math.copysign(1, original.measures.gaze_deg) != math.copysign(1, mirrored.measures.gaze_deg)


def _turned(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh turned about the vertical axis through its centre (orthographic view)."""
    pts = landmarks.astype(np.float64)
    centre = pts.mean(axis=0)
    a = math.radians(degrees)
    x, z = pts[:, 0] - centre[0], pts[:, 2] - centre[2]
    out = pts.copy()
    out[:, 0] = centre[0] + x * math.cos(a) + z * math.sin(a)
    out[:, 2] = centre[2] - x * math.sin(a) + z * math.cos(a)
    return out


@pytest.mark.parametrize("relative", [SELFIE_OPEN, ASTRONAUT, "faces/open/obama_official_portrait_2012.jpg"])
def test_mild_yaw_does_not_close_open_eyes(testdata_dir: Path, relative: str) -> None:
    finding = _largest_face(testdata_dir / relative)
    frontal = classify_face(finding)
    assert frontal.state is EyeState.open and frontal.measures is not None
    for degrees in (-30, -20, -10, 10, 20, 30):
        verdict = classify_face(_with_landmarks(finding, _turned(finding.landmarks, degrees)))
        m = verdict.measures
        assert m is not None and abs(abs(m.yaw - frontal.measures.yaw) - abs(degrees)) < 6
        # The turned eye is shorter on the image; the corrected ratio is not fooled by it.
        assert verdict.state not in (EyeState.closed, EyeState.half_closed), (degrees, verdict)
        assert abs(m.openness - frontal.measures.openness) < 0.03


def test_yaw_does_not_open_closed_eyes(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_CLOSED)
    for degrees in (-30, -15, 15, 30):
        assert classify_face(_with_landmarks(finding, _turned(finding.landmarks, degrees))).state is EyeState.closed


# --- Input the detector cannot measure ----------------------------------------------------------


def _undetermined(verdict: EyeVerdict, *words: str) -> None:
    assert verdict.state is EyeState.undetermined
    assert verdict.confidence == 0.0
    assert verdict.reason and all(w in verdict.reason for w in words), verdict.reason
    assert verdict.to_json()["state"] == "undetermined"


def test_nan_landmarks_are_undetermined(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_OPEN)
    one_nan = finding.landmarks.copy()
    one_nan[RIGHT_EYE[1]] = np.nan
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=one_nan)), "not finite")
    all_nan = np.full_like(finding.landmarks, np.nan)
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=all_nan)), "not finite")


def test_missing_landmarks_are_undetermined(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_OPEN)
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=finding.landmarks[:468])), "missing landmarks")
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=np.zeros((0, 3), np.float32))), "missing")


def test_zero_width_and_zero_area_eyes_are_undetermined(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_OPEN)
    collapsed = finding.landmarks.copy()
    collapsed[list(LEFT_EYE)] = collapsed[LEFT_EYE[0]]
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=collapsed)), "zero-width")
    flat = finding.landmarks.copy()
    p1, p4 = flat[RIGHT_EYE[0]].copy(), flat[RIGHT_EYE[3]].copy()
    for i, t in zip(RIGHT_EYE, (0.0, 0.3, 0.7, 1.0, 0.7, 0.3)):
        flat[i] = p1 + t * (p4 - p1)  # every lid point on the corner line
    _undetermined(classify_face(dataclasses.replace(finding, landmarks=flat)), "zero-area")


def test_eyes_outside_the_frame_are_undetermined(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_OPEN)
    h, w = _upright(testdata_dir / SELFIE_OPEN).shape[:2]
    assert classify_face(finding, image_size=(w, h)).state is EyeState.open
    eye_x = float(finding.landmarks[LEFT_EYE[0], 0])
    _undetermined(classify_face(finding, image_size=(int(eye_x) - 5, h)), "outside")
    shifted = finding.landmarks.copy()
    shifted[:, 1] -= float(finding.landmarks[RIGHT_IRIS, 1]) + 1  # eyes above the top edge
    _undetermined(classify_face(_with_landmarks(finding, shifted), image_size=(w, h)), "outside")


def test_face_cut_by_the_frame_edge_in_a_real_crop(testdata_dir: Path) -> None:
    upright = _upright(testdata_dir / SELFIE_OPEN)
    eye_x = int(_largest_face(testdata_dir / SELFIE_OPEN).landmarks[LEFT_EYE[3], 0])
    verdicts = classify_image(np.ascontiguousarray(upright[:, :eye_x]))
    assert verdicts, "the cut face should still be found"
    for verdict in verdicts:
        _undetermined(verdict, "outside")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays(np.float32, (478, 3), elements=st.one_of(
    st.floats(-1e4, 1e4, width=32), st.just(np.nan), st.just(np.inf), st.just(0.0))))
def test_arbitrary_landmarks_never_crash(landmarks: np.ndarray) -> None:
    finding = FaceFinding(box=(0.0, 0.0, 1.0, 1.0), score=0.5, landmarks=landmarks, yaw=0.0, pitch=0.0, roll=0.0,
                          ear_right=0.3, ear_left=0.3, iris_right=0.45, iris_left=0.45)
    verdict = classify_face(finding, image_size=(640, 480))
    assert 0.0 <= verdict.confidence <= 1.0
    if verdict.state is EyeState.undetermined:
        assert verdict.reason
    else:
        assert verdict.measures is not None and math.isfinite(verdict.measures.openness)
    json.dumps(verdict.to_json())  # plain JSON, no NaN


# --- Invariance --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_faces(testdata_dir: Path) -> list[tuple[FaceFinding, EyeVerdict]]:
    faces = [_largest_face(testdata_dir / r) for r in (EXOTROPIA, AVERTED, SELFIE_CLOSED, ASTRONAUT)]
    return [(f, classify_face(f)) for f in faces]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 3), scale=st.floats(0.6, 5.0), dx=st.floats(-2000, 2000), dy=st.floats(-2000, 2000))
def test_scaling_and_translating_landmarks_keeps_the_verdict(
    real_faces: list[tuple[FaceFinding, EyeVerdict]], index: int, scale: float, dx: float, dy: float,
) -> None:
    finding, original = real_faces[index]
    assert original.state is not EyeState.undetermined
    moved = finding.landmarks.astype(np.float64) * scale + np.array([dx, dy, 0.0])
    verdict = classify_face(_with_landmarks(finding, moved))
    assert verdict.state is original.state
    assert verdict.measures is not None and original.measures is not None
    assert verdict.measures.openness == pytest.approx(original.measures.openness, abs=1e-3)
    assert verdict.measures.vergence_deg == pytest.approx(original.measures.vergence_deg, abs=0.1)


# --- Image-level verdict and loading ------------------------------------------------------------


def test_image_verdict_is_the_worst_face() -> None:
    def v(state: EyeState, confidence: float = 0.9) -> EyeVerdict:
        return EyeVerdict(state, confidence, None)

    assert image_verdict([]) is None
    assert image_verdict([v(EyeState.open), v(EyeState.undetermined)]) is EyeState.undetermined
    assert image_verdict([v(EyeState.open), v(EyeState.looking_away), v(EyeState.half_closed)]) is EyeState.half_closed
    assert image_verdict([v(EyeState.crossed), v(EyeState.closed), v(EyeState.open)]) is EyeState.closed
    picked = worst([v(EyeState.crossed, 0.6), v(EyeState.crossed, 0.8), v(EyeState.open)])
    assert picked is not None and picked.confidence == 0.8


def test_load_upright_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope.jpg"):
        load_upright(tmp_path / "nope.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(InvalidInput, match="junk.jpg"):
        load_upright(junk)


# --- Calibration --------------------------------------------------------------------------------


def test_calibration_round_trips_through_json(tmp_path: Path, labelled_measures: list[LabelledMeasures],
                                              testdata_dir: Path) -> None:
    thresholds = calibrate_eye_thresholds(labelled_measures, source="labels.csv")
    path = write_thresholds(thresholds, tmp_path / "eye_thresholds.json")
    loaded = load_thresholds(path)
    assert loaded == thresholds
    assert loaded.provenance["n_faces"] == {"closed": 9, "crossed": 1, "looking_away": 1, "open": 9}
    assert loaded.provenance["source"] == "labels.csv" and loaded.provenance["date"]
    assert loaded.ear_closed < loaded.ear_open
    finding = _largest_face(testdata_dir / EXOTROPIA)
    assert classify_face(finding, thresholds=loaded) == classify_face(finding, thresholds=thresholds)


def test_shipped_thresholds_are_what_the_shared_set_calibrates_to(labelled_measures: list[LabelledMeasures]) -> None:
    shipped = load_thresholds()
    fresh = calibrate_eye_thresholds(labelled_measures)
    for name in ("ear_closed", "ear_open", "vergence_deg", "gaze_deg", "iris_baseline"):
        assert getattr(shipped, name) == pytest.approx(getattr(fresh, name), rel=0.03), name
    assert shipped.provenance["n_faces"] == fresh.provenance["n_faces"]
    assert {"source", "date", "method", "n_faces", "edges"} <= shipped.provenance.keys()


def test_thresholds_sit_between_the_classes_and_near_the_priors(labelled_measures: list[LabelledMeasures]) -> None:
    t = calibrate_eye_thresholds(labelled_measures)
    closed = [s.measures.openness for s in labelled_measures if s.label == "closed"]
    opened = [s.measures.openness for s in labelled_measures if s.label != "closed"]
    assert max(closed) < t.ear_closed < t.ear_open < min(opened)
    # Literature: closed under ~0.15, smiling open eyes down to ~0.19.
    assert 0.12 <= t.ear_closed <= 0.16 and 0.15 <= t.ear_open <= 0.19
    assert 12.0 < t.vergence_deg < 30.0 and 10.0 < t.gaze_deg < 25.0


def _synthetic(label: str, openness: float) -> LabelledMeasures:
    m = EyeMeasures(ear_right=openness, ear_left=openness, ear_right_corrected=openness,
                    ear_left_corrected=openness, openness=openness, iris_right=0.45, iris_left=0.45,
                    vergence=-0.1, conjugate=0.0, gaze_deg=0.0, vergence_deg=0.0, eye_px=40.0,
                    yaw=0.0, pitch=0.0, roll=0.0)
    return LabelledMeasures(label, m)


def test_calibration_leans_on_priors_when_data_is_scarce() -> None:
    none = calibrate_eye_thresholds([])
    prior = DEFAULT_PRIORS
    assert prior.closed_ear_edge < none.ear_closed < none.ear_open < prior.open_ear_edge
    assert none.vergence_deg == pytest.approx((prior.parallel_vergence_edge_deg + prior.crossed_vergence_edge_deg) / 2)
    # Many labelled faces pull the edges to the data: a wide margin widens the half-closed band.
    many = ([_synthetic("closed", 0.04 + 0.0002 * i) for i in range(200)]
            + [_synthetic("open", 0.28 + 0.0005 * i) for i in range(200)])
    wide = calibrate_eye_thresholds(many)
    assert wide.ear_closed < none.ear_closed and wide.ear_open > none.ear_open
    assert 0.08 < wide.ear_closed < wide.ear_open < 0.28
    assert wide.provenance["n_faces"] == {"closed": 200, "open": 200}


def test_cli_regenerates_the_thresholds_file(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "thresholds.json"
    result = run_cli("qa", "calibrate-eyes", str(labels), "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data["calibrated"]) == {"ear_closed", "ear_open", "vergence_deg", "gaze_deg", "iris_baseline"}
    assert data["provenance"]["source"] == str(labels)
    assert data["provenance"]["n_faces"]["closed"] == 9
    assert len(data["provenance"]["source_sha256"]) == 64
    # The noise model was measured on jittered faces and the support follows from it.
    measured = data["provenance"]["noise_model"]["measured"]
    assert measured["fitted"] and measured["faces"] >= 9 and measured["readings"] > 100
    sizes = measured["by_size"]
    assert sizes[-1]["eye_px"] < sizes[1]["eye_px"] and sizes[-1]["rms_vergence_deg"] > sizes[1]["rms_vergence_deg"]
    assert data["noise"]["vergence_noise_scale_deg_px"] > 0
    assert "crossed needs" in data["provenance"]["noise_model"]["crossed_rule"]
    assert data["provenance"]["support"]["min_gaze_eye_px"] == data["support"]["min_gaze_eye_px"]
    assert data["support"]["min_gaze_eye_px"] == pytest.approx(shipped_support := load_thresholds().min_gaze_eye_px,
                                                               rel=0.1), shipped_support
    regenerated, shipped = load_thresholds(out), load_thresholds()  # same labels: the shipped numbers
    for name, value in data["calibrated"].items():
        assert value == pytest.approx(getattr(shipped, name), rel=0.03), name
    assert dataclasses.replace(regenerated, **data["calibrated"]) == regenerated  # priors as shipped
    assert data["priors"] == shipped.to_json()["priors"]


# --- Size support and landmark noise -------------------------------------------------------------


@pytest.mark.parametrize(("relative", "expected"), [
    (EXOTROPIA, EyeState.crossed), (AVERTED, EyeState.looking_away), (SELFIE_OPEN, EyeState.open),
    ("faces/open/obama_official_portrait_2012.jpg", EyeState.open), (SELFIE_CLOSED, EyeState.closed),
    (CEW_GLASSES, EyeState.closed), ("faces/closed/cew_closed_eye_0030.jpg", EyeState.closed),
])
def test_shrinking_a_face_never_flips_it_to_a_wrong_state(testdata_dir: Path, relative: str,
                                                          expected: EyeState) -> None:
    """Shrunk by 0.8 a step (area averaging, as a camera with fewer pixels): the face keeps its
    state until it is too small to judge, and on the way down it is never anything else."""
    upright = _upright(testdata_dir / relative)
    t = load_thresholds()
    seen: list[tuple[float, EyeState]] = []
    factor = 1.0
    while factor > 0.02:
        verdicts = classify_image(shrink(upright, factor))
        if not verdicts:
            break
        m = verdicts[0].measures
        state = image_verdict(verdicts)
        assert state in (expected, EyeState.undetermined), (factor, verdicts)
        if state is EyeState.undetermined:
            assert "too small" in (verdicts[0].reason or ""), verdicts[0]
        seen.append((m.eye_px if m is not None else 0.0, state))
        if m is not None and m.eye_px < t.min_eye_px:
            break
        factor *= 0.8
    assert seen[0][1] is expected
    assert seen[-1][1] is EyeState.undetermined, seen  # it does get too small to judge
    if expected in (EyeState.crossed, EyeState.looking_away, EyeState.open):
        # A gaze verdict only where the eye is wide enough to support it.
        assert all(eye >= t.min_gaze_eye_px for eye, state in seen if state is expected), seen


def test_subpixel_jitter_does_not_change_a_verdict(report: EvaluationReport, labels: Path) -> None:
    rng = np.random.default_rng(7)
    for row in report.results:
        rgb = _upright(labels.parent / row.relative)
        for _ in range(2):
            dx, dy = rng.uniform(-0.5, 0.5, 2)
            moved = jitter(rgb, dx=float(dx), dy=float(dy), rescale=float(1 + rng.uniform(-0.02, 0.02)))
            state = image_verdict(classify_image(moved))
            assert (state.value if state is not None else "none") == row.predicted, (row.relative, dx, dy)


def test_a_misalignment_within_landmark_noise_is_not_crossed(testdata_dir: Path) -> None:
    """The exotropia reads ~43 degrees: crossed while the noise margin is below that, undetermined
    (with the reason) once the margin demanded at its eye width exceeds it."""
    finding = _largest_face(testdata_dir / EXOTROPIA)
    t = load_thresholds()
    verdict = classify_face(finding, thresholds=t)
    m = verdict.measures
    assert verdict.state is EyeState.crossed and m is not None
    margin = abs(m.vergence_deg) - t.vergence_deg
    assert t.noise_k * t.vergence_noise_deg(m.eye_px) < margin
    wary = dataclasses.replace(t, noise_k=1.5 * margin / t.vergence_noise_deg(m.eye_px))
    doubtful = classify_face(finding, thresholds=wary)
    assert doubtful.state is EyeState.undetermined and doubtful.confidence == 0.0
    assert "too small to judge gaze" in (doubtful.reason or "") and "within landmark noise" in (doubtful.reason or "")


def test_sizes_are_judged_in_source_pixels(testdata_dir: Path) -> None:
    """An aligned crop enlarges a small face: its eyes look wide in crop pixels, but the gaze
    verdict must rest on the pixels the frame had."""
    upright = _upright(testdata_dir / HOPPER)
    quad = ffhq_quad(_largest_face(testdata_dir / HOPPER).landmarks)
    upscale = 512 / float(np.linalg.norm(quad[3] - quad[0]))
    crop = align_face(upright, quad, 512)
    finding = mesh_aligned_face(crop)
    assert finding is not None and upscale > 3
    as_crop = classify_face(finding, image_size=(512, 512))
    at_source = classify_face(finding, image_size=(512, 512), upscale=upscale)
    assert as_crop.measures is not None and at_source.measures is not None
    assert as_crop.measures.eye_px > load_thresholds().min_gaze_eye_px  # the crop alone would claim support
    assert at_source.measures.eye_px == pytest.approx(as_crop.measures.eye_px / upscale)
    assert at_source.measures.iris_px == pytest.approx(as_crop.measures.iris_px / upscale)
    assert at_source.state is EyeState.undetermined and "too small to judge gaze" in (at_source.reason or "")
    # A crop that shrank its face keeps the frame's detail: no change.
    assert classify_face(finding, image_size=(512, 512), upscale=0.5) == as_crop


def test_the_iris_needs_support_too(testdata_dir: Path) -> None:
    finding = _largest_face(testdata_dir / SELFIE_OPEN)
    t = load_thresholds()
    verdict = classify_face(finding, thresholds=t)
    assert verdict.state is EyeState.open and verdict.measures is not None
    strict = dataclasses.replace(t, min_iris_px=verdict.measures.iris_px + 1)
    small_iris = classify_face(finding, thresholds=strict)
    assert small_iris.state is EyeState.undetermined and (small_iris.reason or "").startswith("iris ")
    no_contour = finding.landmarks.copy()
    no_contour[469:473] = np.nan
    assert classify_face(dataclasses.replace(finding, landmarks=no_contour)).state is EyeState.undetermined


def test_noise_fit_recovers_a_known_model_and_sets_the_support() -> None:
    rng = np.random.default_rng(3)
    readings = []
    for face in range(6):
        for eye_px in (8.0, 12.0, 20.0, 40.0):
            sd_v, sd_g = math.hypot(1.5, 60.0 / eye_px), math.hypot(0.5, 20.0 / eye_px)
            for sign in (1, -1) * 20:  # equal and opposite deviations: exact mean squares
                readings.append(NoiseReading(f"f{face}", eye_px, eye_px + rng.normal(0, 0.01), sign * sd_v,
                                             sign * sd_g, sign * 0.1 / eye_px))
    model = fit_noise(readings)
    assert model.vergence_floor_deg == pytest.approx(1.5, abs=0.1)
    assert model.vergence_scale_deg_px == pytest.approx(60.0, rel=0.02)
    assert model.gaze_scale_deg_px == pytest.approx(20.0, rel=0.02)
    assert model.openness_scale_px == pytest.approx(0.1, rel=0.02)
    t = dataclasses.replace(load_thresholds(), noise_k=3.0, vergence_deg=18.0, gaze_deg=17.0,
                            vergence_noise_floor_deg=1.5, vergence_noise_scale_deg_px=60.0,
                            gaze_noise_floor_deg=0.5, gaze_noise_scale_deg_px=20.0)
    eye, iris = gaze_support(t, 0.4)
    assert t.noise_k * t.vergence_noise_deg(eye) == pytest.approx(t.vergence_deg, rel=1e-3)  # vergence binds
    assert iris == pytest.approx(0.4 * eye, rel=1e-3)
    assert fit_noise(readings[:3]).record["fitted"] is False  # too little data: the priors' model
