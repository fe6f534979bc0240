"""Calibrate the eye-state thresholds on labelled faces and write ``qa/eye_thresholds.json``.

What is calibrated and what is a prior:

- **Calibrated** (from the labelled faces, pulled towards a literature prior): ``ear_closed`` and
  ``ear_open`` (openness), ``vergence_deg`` (crossed), ``gaze_deg`` (looking away) and
  ``iris_baseline`` (where FaceMesh puts the iris of an eye looking ahead).
- **Priors** (copied unchanged into the file): the eyeball geometry, the pose and size limits
  and the confidence scale, all in :class:`CalibrationPriors`.

Method. A threshold must generalise to photographs the labelled set does not contain, so it is
placed in the margin *between* class distributions, never fitted to the few faces at the edge.
For each boundary, each side's edge is its most extreme labelled value (one value per twenty is
trimmed, to survive a mislabelled file); that edge is then shrunk towards the literature's edge
as if the prior were ``strength`` further faces: ``(n * data + strength * prior) / (n + strength)``.
The threshold goes in the middle of the margin between the two shrunk edges: for the eyelids,
the margin between closed and open eyes is split in thirds on a log scale (closed, half-closed,
open), so no labelled half-closed faces are needed to place the middle band (such labels are
counted but not used). Few labelled
faces leave a threshold close to its prior; many move it to the data.

Landmark noise and size support. How far FaceMesh's landmarks move at a given size is measured,
not assumed: each labelled face with open lids is shrunk to a ladder of eye widths and every
size is jittered (sub-pixel shifts and rescales of a few percent, ``cv2.warpAffine``); the
deviation of each reading's vergence and gaze angle from the face's full-size reading (the mean
over its jittered full-size copies) is the noise at that eye width. The model
``noise(eye_px) = sqrt(floor**2 + (scale / eye_px)**2)`` (also for the eye aspect ratio) is fitted to the mean squared deviation
by least squares (``floor``: what the mesh's own resolution leaves; ``scale / eye_px``: a
landmark error of a fixed fraction of a source pixel). A crossed call then needs
``|vergence| > vergence_deg + noise_k * noise(eye_px)`` (the same for looking away), and the gaze
is judged only down to the eye width where ``noise_k`` deviations of noise alone reach the
threshold (``min_gaze_eye_px``); the iris must be at least that width times the narrowest iris
to eye ratio of the labelled faces (``min_iris_px``). Narrower: ``undetermined``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faces.detect import FaceFinding, find_faces
from likeness.files import write_text_atomic
from likeness.progress import ProgressFn
from qa.evaluate import read_labels
from qa.eyes import (
    THRESHOLDS_PATH,
    EyeMeasures,
    EyeThresholds,
    Unmeasurable,
    gaze_angles,
    load_upright,
    measure_face,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationPriors:
    """Literature and anatomy priors. Edges are where a class usually ends."""

    # Eye aspect ratio: open eyes measure about 0.25-0.35 and a blink drops under ~0.15-0.2
    # (Soukupová & Čech 2016); a broad smile narrows clearly open eyes to ~0.19 (the smiling
    # official portrait in the shared test set). Closed eyes seen from above reach ~0.15.
    closed_ear_edge: float = 0.15
    open_ear_edge: float = 0.19
    # FaceMesh puts a forward-looking iris at ~0.45 of the outer->inner corner axis.
    iris_baseline: float = 0.45
    # FaceMesh's iris noise lets normal eyes read up to ~12 degrees off parallel (portraits
    # outside the labelled set included); the strabismus a photograph shows plainly, large
    # tropias of 40-50 prism dioptres and deliberately crossed eyes, is ~24 degrees or more.
    parallel_vergence_edge_deg: float = 12.0
    crossed_vergence_edge_deg: float = 24.0
    # People read eye contact within a cone of ~±5-10 degrees (Gamer & Hecht 2007); a glance
    # that is plainly sideways is 25 degrees or more.
    camera_gaze_edge_deg: float = 10.0
    averted_gaze_edge_deg: float = 25.0
    strength: float = 10.0  # the prior counts as this many labelled faces
    # Fixed priors, written to the thresholds file as they are (see EyeThresholds).
    eye_width_over_iris_radius: float = 3.0
    corner_depth_over_iris_radius: float = 0.4
    both_eyes_max_yaw_deg: float = 30.0
    max_yaw_deg: float = 50.0
    max_pitch_deg: float = 35.0
    min_eye_px: float = 5.0
    ear_softness: float = 0.015
    angle_softness_deg: float = 3.0
    # A crossed or looking-away call must clear its threshold by this many deviations of the
    # landmark noise: a frame is rejected on it, so a false call must be rare (~1 in 700 faces
    # were the noise Gaussian; it is not, its tail is longer).
    noise_k: float = 3.0
    # Noise model before any is measured: FaceMesh places an iris to ~0.5 source pixel, which
    # the eyeball model (eye_width_over_iris_radius = 3) turns into ~120/eye_px degrees of
    # vergence (half that for the mean gaze), over a floor of a couple of degrees.
    vergence_noise_floor_deg: float = 2.0
    vergence_noise_scale_deg_px: float = 120.0
    gaze_noise_floor_deg: float = 1.0
    gaze_noise_scale_deg_px: float = 60.0
    openness_noise_floor: float = 0.005  # eye aspect ratio
    openness_noise_scale_px: float = 0.05
    # The iris is ~12 mm across, the palpebral fissure ~30 mm.
    iris_over_eye: float = 0.4
    # The size ladder and jitter of the noise measurement.
    noise_eye_px: tuple[float, ...] = (40.0, 28.0, 20.0, 14.0, 10.0, 8.0, 6.0)
    noise_jitters: int = 6
    noise_max_shift_px: float = 0.5
    noise_max_rescale: float = 0.03

    def seed(self) -> EyeThresholds:
        """Thresholds made of priors alone: what measuring uses before anything is calibrated."""
        t = EyeThresholds(
            ear_closed=self.closed_ear_edge, ear_open=self.open_ear_edge,
            vergence_deg=(self.parallel_vergence_edge_deg + self.crossed_vergence_edge_deg) / 2,
            gaze_deg=(self.camera_gaze_edge_deg + self.averted_gaze_edge_deg) / 2,
            iris_baseline=self.iris_baseline,
            eye_width_over_iris_radius=self.eye_width_over_iris_radius,
            corner_depth_over_iris_radius=self.corner_depth_over_iris_radius,
            both_eyes_max_yaw_deg=self.both_eyes_max_yaw_deg, max_yaw_deg=self.max_yaw_deg,
            max_pitch_deg=self.max_pitch_deg, min_eye_px=self.min_eye_px,
            ear_softness=self.ear_softness, angle_softness_deg=self.angle_softness_deg, noise_k=self.noise_k,
            vergence_noise_floor_deg=self.vergence_noise_floor_deg,
            vergence_noise_scale_deg_px=self.vergence_noise_scale_deg_px,
            gaze_noise_floor_deg=self.gaze_noise_floor_deg, gaze_noise_scale_deg_px=self.gaze_noise_scale_deg_px,
            openness_noise_floor=self.openness_noise_floor, openness_noise_scale_px=self.openness_noise_scale_px,
            min_gaze_eye_px=self.min_eye_px, min_iris_px=self.min_eye_px * self.iris_over_eye,
        )
        support = gaze_support(t, self.iris_over_eye)
        return replace(t, min_gaze_eye_px=support[0], min_iris_px=support[1])


@dataclass(frozen=True)
class NoiseModel:
    """``sqrt(floor**2 + (scale / eye_px)**2)`` degrees, for vergence and for gaze."""

    vergence_floor_deg: float
    vergence_scale_deg_px: float
    gaze_floor_deg: float
    gaze_scale_deg_px: float
    record: dict[str, Any]  # how it was measured, for the provenance
    openness_floor: float = 0.0  # the same model for the eye aspect ratio
    openness_scale_px: float = 0.0


def gaze_support(t: EyeThresholds, iris_over_eye: float) -> tuple[float, float]:
    """(min_gaze_eye_px, min_iris_px): the narrowest eye at which ``noise_k`` deviations of
    landmark noise alone stay below the crossed and the looking-away thresholds, never under
    ``min_eye_px``; the iris support is that width times ``iris_over_eye``. Where the noise
    floor alone reaches a threshold, gaze is never judged (infinite support)."""
    widths = [t.min_eye_px]
    for threshold, floor, scale in ((t.vergence_deg, t.vergence_noise_floor_deg, t.vergence_noise_scale_deg_px),
                                    (t.gaze_deg, t.gaze_noise_floor_deg, t.gaze_noise_scale_deg_px)):
        room = (threshold / t.noise_k) ** 2 - floor**2
        widths.append(scale / math.sqrt(room) if room > 0 else math.inf)
    width = max(widths)
    if math.isinf(width):
        log.warning("landmark noise alone reaches a gaze threshold at any size: gaze is never judged")
        return 1e9, 1e9  # JSON has no infinity
    return round(width, 2), round(width * iris_over_eye, 2)


DEFAULT_PRIORS = CalibrationPriors()
OPEN_LIDS = ("open", "crossed", "looking_away")  # labels whose eyelids are open


@dataclass(frozen=True)
class LabelledMeasures:
    label: str  # a class name of qa.evaluate.TRUTH_LABELS' values
    measures: EyeMeasures
    source: str = ""  # the image it came from, for the record


def _shrunk(values: Sequence[float], side: str, prior: float, strength: float) -> tuple[float, float | None]:
    """(edge shrunk towards ``prior``, the data's own edge or None)."""
    if not values:
        return prior, None
    ordered = sorted(values)
    trim = len(ordered) // 20
    data = ordered[-1 - trim] if side == "max" else ordered[trim]
    n = len(ordered)
    return (n * data + strength * prior) / (n + strength), data


def _between(low: float, high: float, what: str) -> float:
    if high <= low:
        log.warning("%s: the labelled classes overlap (%.3f >= %.3f); threshold set on the overlap", what, low, high)
    return (low + high) / 2.0


def calibrate_eye_thresholds(samples: Iterable[LabelledMeasures], *, priors: CalibrationPriors = DEFAULT_PRIORS,
                             source: str | None = None, noise: NoiseModel | None = None) -> EyeThresholds:
    """Thresholds from labelled face measures and a measured landmark noise model (the priors'
    model without one); see the module docstring for the method. The size support follows from
    the noise model and the thresholds: the gaze thresholds are calibrated on the faces above
    the support, the support recomputed from them, once. The result's ``provenance`` records the
    counts, the data edges, the noise model, the support rule, the priors and the method."""
    samples = list(samples)
    p, seed = priors, priors.seed()
    if noise is not None:
        seed = replace(seed, vergence_noise_floor_deg=round(noise.vergence_floor_deg, 3),
                       vergence_noise_scale_deg_px=round(noise.vergence_scale_deg_px, 2),
                       gaze_noise_floor_deg=round(noise.gaze_floor_deg, 3),
                       gaze_noise_scale_deg_px=round(noise.gaze_scale_deg_px, 2),
                       openness_noise_floor=round(noise.openness_floor, 5),
                       openness_noise_scale_px=round(noise.openness_scale_px, 4))
    ratios = [s.measures.iris_px / s.measures.eye_px for s in samples
              if s.label in OPEN_LIDS and s.measures.eye_px > 0 and math.isfinite(s.measures.iris_px)]
    iris_ratio, iris_ratio_data = _shrunk(ratios, "min", p.iris_over_eye, p.strength)
    start_gaze, start_iris = gaze_support(seed, iris_ratio)
    first = _calibrate(samples, p, replace(seed, min_gaze_eye_px=start_gaze, min_iris_px=start_iris))
    min_gaze, min_iris = gaze_support(first, iris_ratio)
    result = _calibrate(samples, p, replace(first, min_gaze_eye_px=min_gaze, min_iris_px=min_iris))
    if gaze_support(result, iris_ratio) != (min_gaze, min_iris):
        log.info("gaze support moved with the recalibrated thresholds; kept the first fixed-point step")
    provenance = {
        **result.provenance, "source": source,
        "noise_model": {
            "formula": "noise_deg(eye_px) = sqrt(floor_deg**2 + (scale_deg_px / eye_px)**2), one deviation",
            "vergence": {"floor_deg": result.vergence_noise_floor_deg,
                         "scale_deg_px": result.vergence_noise_scale_deg_px},
            "gaze": {"floor_deg": result.gaze_noise_floor_deg, "scale_deg_px": result.gaze_noise_scale_deg_px},
            "openness": {"floor": result.openness_noise_floor, "scale_px": result.openness_noise_scale_px},
            "k": p.noise_k,
            "measured": noise.record if noise is not None else None,
            "crossed_rule": "crossed needs |vergence_deg| > vergence_deg + k * vergence_noise_deg(eye_px); "
                            "looking_away needs |gaze_deg| > gaze_deg + k * gaze_noise_deg(eye_px); "
                            "between the threshold and that margin the state is undetermined; eyelids: "
                            "closed needs openness < ear_closed - k * openness_noise(eye_px), half_closed "
                            "ear_closed + k * noise <= openness < ear_open - k * noise, open openness >= "
                            "ear_open + k * noise; readings within k noise of a lid threshold are undetermined",
        },
        "support": {
            "rule": "sizes in source pixels (aligned crops: divided by the crop's upscale). Eye narrower than "
                    "min_eye_px: undetermined (lids not judged). Lids open and eye narrower than min_gaze_eye_px, "
                    "or iris diameter under min_iris_px: undetermined (gaze not judged). min_gaze_eye_px = "
                    "narrowest width where k noise deviations alone stay under both gaze thresholds: "
                    "scale / sqrt((threshold / k)**2 - floor**2); min_iris_px = min_gaze_eye_px * iris_over_eye",
            "min_eye_px": result.min_eye_px, "min_gaze_eye_px": min_gaze, "min_iris_px": min_iris,
            "iris_over_eye": {"data": iris_ratio_data, "shrunk": iris_ratio, "prior": p.iris_over_eye},
        },
    }
    return replace(result, provenance=_rounded(provenance))


def _calibrate(samples: Sequence[LabelledMeasures], p: CalibrationPriors, seed: EyeThresholds) -> EyeThresholds:
    usable = [s for s in samples
              if math.isfinite(s.measures.openness) and s.measures.eye_px >= p.min_eye_px
              and abs(s.measures.yaw) <= p.max_yaw_deg and abs(s.measures.pitch) <= p.max_pitch_deg]
    by_label = Counter(s.label for s in usable)
    gaze_ok = [s for s in usable if s.measures.eye_px >= seed.min_gaze_eye_px
               and s.measures.iris_px >= seed.min_iris_px]

    # Openness: closed faces against every face whose lids are open.
    closed_edge, closed_data = _shrunk([s.measures.openness for s in usable if s.label == "closed"],
                                       "max", p.closed_ear_edge, p.strength)
    open_edge, open_data = _shrunk([s.measures.openness for s in usable if s.label in OPEN_LIDS],
                                   "min", p.open_ear_edge, p.strength)
    if open_edge <= closed_edge:  # no margin: one threshold on the overlap, no half-closed band
        log.warning("eye aspect ratio: the labelled classes overlap (%.3f >= %.3f)", closed_edge, open_edge)
        ear_closed = ear_open = math.sqrt(closed_edge * open_edge)
    else:
        third = (math.log(open_edge) - math.log(closed_edge)) / 3.0
        ear_closed = math.exp(math.log(closed_edge) + third)
        ear_open = math.exp(math.log(open_edge) - third)

    # Iris baseline: the mean of both irises cancels the head-yaw term of the eyeball model.
    ahead = [(s.measures.iris_right + s.measures.iris_left) / 2 for s in gaze_ok if s.label == "open"]
    baseline = ((len(ahead) * statistics.median(ahead) + p.strength * p.iris_baseline) / (len(ahead) + p.strength)
                if ahead else p.iris_baseline)
    geometry = replace(seed, iris_baseline=baseline)

    def angles(s: LabelledMeasures) -> tuple[float, float]:
        both = abs(s.measures.yaw) <= p.both_eyes_max_yaw_deg
        return gaze_angles(s.measures.iris_right, s.measures.iris_left, s.measures.yaw, thresholds=geometry,
                           use_right=both or s.measures.yaw < 0, use_left=both or s.measures.yaw > 0)

    measured = [(s.label, *angles(s)) for s in gaze_ok if s.label in OPEN_LIDS]
    parallel_edge, parallel_data = _shrunk([abs(v) for lab, _, v in measured if lab != "crossed" and math.isfinite(v)],
                                           "max", p.parallel_vergence_edge_deg, p.strength)
    crossed_edge, crossed_data = _shrunk([abs(v) for lab, _, v in measured if lab == "crossed" and math.isfinite(v)],
                                         "min", p.crossed_vergence_edge_deg, p.strength)
    camera_edge, camera_data = _shrunk([abs(g) for lab, g, _ in measured if lab == "open"],
                                       "max", p.camera_gaze_edge_deg, p.strength)
    averted_edge, averted_data = _shrunk([abs(g) for lab, g, _ in measured if lab == "looking_away"],
                                         "min", p.averted_gaze_edge_deg, p.strength)

    provenance = {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "notes": "'calibrated' values come from the labelled faces pulled towards literature priors; "
                 "'priors' are fixed anatomy, measurement and confidence settings (qa/calibrate.py, "
                 "CalibrationPriors); 'edges' give each class edge from the data, its prior and the blend",
        "method": "edge-margin: each class edge = its most extreme labelled value (1 in 20 trimmed), "
                  f"shrunk towards the literature prior as {p.strength:g} pseudo-faces; threshold = middle of "
                  "the margin between the two edges (eyelids: log-scale thirds for closed/half-closed/open); "
                  "iris baseline = median of open faces shrunk the same way",
        "n_faces": dict(sorted(by_label.items())),
        "n_faces_gaze": dict(sorted(Counter(lab for lab, _, _ in measured).items())),
        "edges": {
            "closed_ear": {"data": closed_data, "shrunk": closed_edge, "prior": p.closed_ear_edge},
            "open_ear": {"data": open_data, "shrunk": open_edge, "prior": p.open_ear_edge},
            "parallel_vergence_deg": {"data": parallel_data, "shrunk": parallel_edge,
                                      "prior": p.parallel_vergence_edge_deg},
            "crossed_vergence_deg": {"data": crossed_data, "shrunk": crossed_edge,
                                     "prior": p.crossed_vergence_edge_deg},
            "camera_gaze_deg": {"data": camera_data, "shrunk": camera_edge, "prior": p.camera_gaze_edge_deg},
            "averted_gaze_deg": {"data": averted_data, "shrunk": averted_edge, "prior": p.averted_gaze_edge_deg},
        },
        "priors": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p).items()},
    }
    return replace(
        geometry, ear_closed=round(ear_closed, 4), ear_open=round(ear_open, 4),
        vergence_deg=round(_between(parallel_edge, crossed_edge, "eye misalignment"), 2),
        gaze_deg=round(_between(camera_edge, averted_edge, "gaze"), 2), iris_baseline=round(baseline, 4),
        provenance=provenance,
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def measure_labelled(labels_csv: Path | str, *, priors: CalibrationPriors = DEFAULT_PRIORS,
                     progress: ProgressFn | None = None) -> list[LabelledMeasures]:
    """Measures of the labelled faces: every face of an ``open`` image, the largest face of any
    other (the subject; bystanders carry no label). Unmeasurable faces are left out."""
    rows = [r for r in read_labels(labels_csv) if r.truth != "none"]
    seed, samples = priors.seed(), []
    for done, row in enumerate(rows, start=1):
        rgb = load_upright(row.path)
        faces = find_faces(rgb)
        for finding in faces if row.truth == "open" else faces[:1]:
            try:
                measures = measure_face(finding, image_size=(rgb.shape[1], rgb.shape[0]), thresholds=seed)
            except Unmeasurable as exc:
                log.info("%s: face left out of calibration: %s", row.relative, exc)
                continue
            samples.append(LabelledMeasures(row.truth, measures, row.relative))
        if not faces:
            log.info("%s: no face found, left out of calibration", row.relative)
        if progress is not None:
            progress(done, len(rows), row.relative)
    return samples


def calibrate_from_labels(labels_csv: Path | str, *, priors: CalibrationPriors = DEFAULT_PRIORS,
                          progress: ProgressFn | None = None) -> EyeThresholds:
    """Measure the faces of a labels CSV and their landmark noise, and calibrate on them,
    recording the file in provenance."""
    labels_csv = Path(labels_csv)
    samples = measure_labelled(labels_csv, priors=priors, progress=progress)
    noise = fit_noise(measure_noise(labels_csv, priors=priors, progress=progress), priors=priors)
    thresholds = calibrate_eye_thresholds(samples, priors=priors, source=str(labels_csv), noise=noise)
    digest = hashlib.sha256(labels_csv.read_bytes()).hexdigest()
    return replace(thresholds, provenance={**thresholds.provenance, "source_sha256": digest,
                                           "faces": [{"path": s.source, "label": s.label} for s in samples]})


# --- Landmark noise ------------------------------------------------------------------------------


def jitter(rgb: np.ndarray, *, dx: float, dy: float, rescale: float) -> np.ndarray:
    """``rgb`` shifted by (dx, dy) pixels and rescaled by ``rescale`` about its centre, same size
    (bilinear ``cv2.warpAffine``, edges mirrored)."""
    h, w = rgb.shape[:2]
    matrix = np.array([[rescale, 0.0, (1 - rescale) * w / 2 + dx], [0.0, rescale, (1 - rescale) * h / 2 + dy]])
    return cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def shrink(rgb: np.ndarray, factor: float) -> np.ndarray:
    """``rgb`` scaled by ``factor`` (< 1) with area averaging, as a camera with fewer pixels sees it."""
    if factor >= 1.0:
        return rgb
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class NoiseReading:
    """One jittered, shrunk copy of a labelled face: its eye width and how far its angles moved
    from the face's full-size reading."""

    source: str
    level: float  # target eye width in pixels; 0 for the full-size copies
    eye_px: float
    d_vergence_deg: float
    d_gaze_deg: float
    d_openness: float = 0.0


def _centre(finding: FaceFinding) -> tuple[float, float]:
    x0, y0, x1, y1 = finding.box
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def measure_noise(labels_csv: Path | str, *, priors: CalibrationPriors = DEFAULT_PRIORS, seed: int = 0,
                  progress: ProgressFn | None = None) -> list[NoiseReading]:
    """Jittered readings of the largest face of every labelled image whose lids are open, at its
    full size and shrunk to each eye width of ``priors.noise_eye_px`` below it; see the module
    docstring. Copies in which the face is lost or unmeasurable are left out."""
    p, rng, thresholds = priors, np.random.default_rng(seed), priors.seed()
    rows = [r for r in read_labels(labels_csv) if r.truth in OPEN_LIDS]
    readings: list[NoiseReading] = []
    for done, row in enumerate(rows, start=1):
        rgb = load_upright(row.path)
        faces = find_faces(rgb)
        try:
            full = measure_face(faces[0], thresholds=thresholds) if faces else None
        except Unmeasurable:
            full = None
        if full is None or not math.isfinite(full.vergence_deg):
            log.info("%s: no measurable face with both eyes, left out of the noise measurement", row.relative)
            continue
        cx, cy = _centre(faces[0])
        raw = [(0.0, full.eye_px, full.vergence_deg, full.gaze_deg, full.openness)]
        for level in (0.0, *(w for w in p.noise_eye_px if w < 0.95 * full.eye_px)):
            factor = level / full.eye_px if level else 1.0
            small = shrink(rgb, factor)
            h, w = small.shape[:2]
            for _ in range(p.noise_jitters):
                dx, dy = rng.uniform(-p.noise_max_shift_px, p.noise_max_shift_px, 2)
                rescale = 1.0 + rng.uniform(-p.noise_max_rescale, p.noise_max_rescale)
                found = find_faces(jitter(small, dx=dx, dy=dy, rescale=rescale))
                ex = (cx * factor - w / 2) * rescale + w / 2 + dx
                ey = (cy * factor - h / 2) * rescale + h / 2 + dy
                if not found:
                    continue
                face = min(found, key=lambda f: math.dist(_centre(f), (ex, ey)))
                try:
                    m = measure_face(face, thresholds=thresholds)
                except Unmeasurable:
                    continue
                if math.isfinite(m.vergence_deg):
                    raw.append((level, m.eye_px / rescale, m.vergence_deg, m.gaze_deg, m.openness))
        full_size = [r for r in raw if r[0] == 0.0]
        ref_v = statistics.fmean(r[2] for r in full_size)
        ref_g = statistics.fmean(r[3] for r in full_size)
        ref_e = statistics.fmean(r[4] for r in full_size)
        readings += [NoiseReading(row.relative, level, eye, v - ref_v, g - ref_g, e - ref_e)
                     for level, eye, v, g, e in raw]
        if progress is not None:
            progress(done, len(rows), f"noise: {row.relative}")
    return readings


def _fit_floor_and_scale(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Non-negative least squares of ``ms = floor**2 + scale**2 / eye_px**2`` over (eye_px, ms)."""
    x = np.array([1.0 / e**2 for e, _ in points])
    y = np.array([ms for _, ms in points])
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    if b < 0:  # no size dependence in the data: the floor alone
        a, b = float(y.mean()), 0.0
    elif a < 0:  # no floor: the size term alone through the origin
        a, b = 0.0, float(x @ y / (x @ x))
    return math.sqrt(max(a, 0.0)), math.sqrt(max(b, 0.0))


def fit_noise(readings: Sequence[NoiseReading], *, priors: CalibrationPriors = DEFAULT_PRIORS) -> NoiseModel:
    """The noise model fitted to the mean squared deviation of each (face, size) group; the
    priors' model where there are fewer than three groups."""
    groups: dict[tuple[str, float], list[NoiseReading]] = {}
    for r in readings:
        groups.setdefault((r.source, r.level), []).append(r)
    cells = [(statistics.fmean(r.eye_px for r in g), statistics.fmean(r.d_vergence_deg**2 for r in g),
              statistics.fmean(r.d_gaze_deg**2 for r in g), statistics.fmean(r.d_openness**2 for r in g))
             for g in groups.values() if len(g) >= 2]
    if len(cells) < 3:
        log.warning("too few jittered faces (%d groups) to fit the landmark noise; the prior model is used", len(cells))
        return NoiseModel(priors.vergence_noise_floor_deg, priors.vergence_noise_scale_deg_px,
                          priors.gaze_noise_floor_deg, priors.gaze_noise_scale_deg_px,
                          {"groups": len(cells), "fitted": False},
                          priors.openness_noise_floor, priors.openness_noise_scale_px)
    v_floor, v_scale = _fit_floor_and_scale([(e, v) for e, v, _, _ in cells])
    g_floor, g_scale = _fit_floor_and_scale([(e, g) for e, _, g, _ in cells])
    o_floor, o_scale = _fit_floor_and_scale([(e, o) for e, _, _, o in cells])
    by_level: dict[float, list[tuple[float, float, float, float]]] = {}
    for (_, level), g in groups.items():
        by_level.setdefault(level, []).extend((r.eye_px, r.d_vergence_deg, r.d_gaze_deg, r.d_openness) for r in g)
    table = [{"eye_px": statistics.fmean(e for e, _, _, _ in rows),
              "rms_vergence_deg": math.sqrt(statistics.fmean(v * v for _, v, _, _ in rows)),
              "rms_gaze_deg": math.sqrt(statistics.fmean(g * g for _, _, g, _ in rows)),
              "rms_openness": math.sqrt(statistics.fmean(o * o for _, _, _, o in rows)),
              "readings": len(rows)}
             for level, rows in sorted(by_level.items(), key=lambda kv: -kv[0] if kv[0] else -math.inf)]
    record = {
        "method": "each labelled face with open lids (largest face of the image) at full size and shrunk "
                  f"(area averaging) to eye widths {list(priors.noise_eye_px)} px, each copy jittered "
                  f"{priors.noise_jitters} times (cv2.warpAffine: shift up to {priors.noise_max_shift_px} px, "
                  f"rescale up to {priors.noise_max_rescale:.0%}); deviation = reading minus the mean of the "
                  "face's full-size readings; model fitted by least squares to each (face, size) group's "
                  "mean squared deviation",
        "faces": len({s for s, _ in groups}), "groups": len(cells), "readings": len(readings), "fitted": True,
        "by_size": table,
    }
    return NoiseModel(v_floor, v_scale, g_floor, g_scale, record, o_floor, o_scale)


def write_thresholds(thresholds: EyeThresholds, path: Path | str = THRESHOLDS_PATH) -> Path:
    """Write the thresholds file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(thresholds.to_json(), indent=2, sort_keys=False) + "\n")
    log.info("eye thresholds written to %s", path)
    return path
