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

from faces.detect import find_faces
from likeness.files import write_text_atomic
from likeness.progress import ProgressFn
from qa.evaluate import read_labels
from qa.eyes import THRESHOLDS_PATH, EyeMeasures, EyeThresholds, Unmeasurable, gaze_angles, load_upright, measure_face

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
    min_gaze_eye_px: float = 8.0
    ear_softness: float = 0.015
    angle_softness_deg: float = 3.0

    def seed(self) -> EyeThresholds:
        """Thresholds made of priors alone: what measuring uses before anything is calibrated."""
        return EyeThresholds(
            ear_closed=self.closed_ear_edge, ear_open=self.open_ear_edge,
            vergence_deg=(self.parallel_vergence_edge_deg + self.crossed_vergence_edge_deg) / 2,
            gaze_deg=(self.camera_gaze_edge_deg + self.averted_gaze_edge_deg) / 2,
            iris_baseline=self.iris_baseline,
            eye_width_over_iris_radius=self.eye_width_over_iris_radius,
            corner_depth_over_iris_radius=self.corner_depth_over_iris_radius,
            both_eyes_max_yaw_deg=self.both_eyes_max_yaw_deg, max_yaw_deg=self.max_yaw_deg,
            max_pitch_deg=self.max_pitch_deg, min_eye_px=self.min_eye_px, min_gaze_eye_px=self.min_gaze_eye_px,
            ear_softness=self.ear_softness, angle_softness_deg=self.angle_softness_deg,
        )


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
                             source: str | None = None) -> EyeThresholds:
    """Thresholds from labelled face measures; see the module docstring for the method. The
    result's ``provenance`` records the counts, the data edges, the priors and the method."""
    p, seed = priors, priors.seed()
    usable = [s for s in samples
              if math.isfinite(s.measures.openness) and s.measures.eye_px >= p.min_eye_px
              and abs(s.measures.yaw) <= p.max_yaw_deg and abs(s.measures.pitch) <= p.max_pitch_deg]
    by_label = Counter(s.label for s in usable)
    gaze_ok = [s for s in usable if s.measures.eye_px >= p.min_gaze_eye_px]

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
        "source": source,
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
        "priors": asdict(p),
    }
    return replace(
        geometry, ear_closed=round(ear_closed, 4), ear_open=round(ear_open, 4),
        vergence_deg=round(_between(parallel_edge, crossed_edge, "eye misalignment"), 2),
        gaze_deg=round(_between(camera_edge, averted_edge, "gaze"), 2), iris_baseline=round(baseline, 4),
        provenance=_rounded(provenance),
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
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
    """Measure the faces of a labels CSV and calibrate on them, recording the file in provenance."""
    labels_csv = Path(labels_csv)
    samples = measure_labelled(labels_csv, priors=priors, progress=progress)
    thresholds = calibrate_eye_thresholds(samples, priors=priors, source=str(labels_csv))
    digest = hashlib.sha256(labels_csv.read_bytes()).hexdigest()
    return replace(thresholds, provenance={**thresholds.provenance, "source_sha256": digest,
                                           "faces": [{"path": s.source, "label": s.label} for s in samples]})


def write_thresholds(thresholds: EyeThresholds, path: Path | str = THRESHOLDS_PATH) -> Path:
    """Write the thresholds file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(thresholds.to_json(), indent=2, sort_keys=False) + "\n")
    log.info("eye thresholds written to %s", path)
    return path
