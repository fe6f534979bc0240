"""Find faces in an RGB frame and measure them: 478 landmarks, head pose, eye openness, gaze.

MediaPipe's full-range and short-range detectors run on a downscaled copy of the frame (and the
full-range one also on overlapping tiles of it, for small faces). Each detected box is re-cropped
from a source with enough resolution, the full frame where needed, and handed to FaceMesh, which
therefore never sees a whole 24-megapixel frame. Coordinates are in pixels of the input image.

The MediaPipe graphs are built on first use and kept for the life of the process. MediaPipe does
not survive fork() once used, so worker pools must use the 'spawn' or 'forkserver' start method
if the parent has searched for faces itself. What MediaPipe and TensorFlow Lite log from C++ while
a graph runs (notes on model signatures and projections, whatever the environment asks) is
caught on fd 2 around each call and dropped; their errors become warnings of this module's logger.
Images go to the graphs as read-only views, whose pixels MediaPipe reads without a copy, and
FaceMesh's landmarks are read straight off the bytes of its output packet.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faces.landmarks import N_LANDMARKS
from faces.measures import FaceGeometry, face_geometry
from likeness import logs

log = logging.getLogger(__name__)

MIN_IMAGE_EDGE = 16  # nothing smaller can hold a measurable face
DETECT_LONG_EDGE = 1280  # detectors resize to 128/192 px internally; more only costs time
# An image framed around one face is meshed as it is up to this long edge: FaceMesh samples the
# face at 192 px from whatever it is given, and shrinking a 1024 px crop first cost more (1.5 ms)
# than it saved the mesh (under 1 ms). Larger images are shrunk by a whole factor to fit.
ALIGNED_MESH_EDGE = 2048
MESH_SIZE = 384  # side of the square crop given to FaceMesh (its landmark model runs at 192)
CROP_MARGIN = 2.0  # crop side as a multiple of the detector box's longer side
DEDUP_IOU = 0.4
# Faces under about a twentieth of the frame's long edge are too small for the detectors at
# their 192 px input, so large frames are also scanned in overlapping tiles.
TILE_FRACTION = 0.4
TILE_OVERLAP = 0.25
MIN_TILED_EDGE = 640


@dataclass(frozen=True, eq=False)  # eq would compare landmark arrays ambiguously
class FaceFinding:
    """One face, in pixels of the image given to :func:`find_faces`.

    ``box`` is the extent of the landmarks (x0, y0, x1, y1); ``score`` the detector confidence.
    ``landmarks`` is FaceMesh's (478, 3) float32 array, z in the same pixel scale as x; where
    the frame cuts the face, outline points continue past its edge.

    Pose sign conventions (degrees, camera looking at the subject, image y pointing down):

    - ``yaw`` > 0: the subject turns to their own right, so the nose points to the image left.
    - ``pitch`` > 0: the subject raises the chin (looks up).
    - ``roll`` > 0: the eye line turns clockwise as seen in the image, i.e. the subject's left
      eye (image right) is lower than the right one.

    ``ear_*`` is the eye aspect ratio on the image plane (about 0.3 open, under 0.15 closed).
    ``iris_*`` is the iris centre projected on the eye's corner axis, 0 at the outer corner and
    1 at the inner one (about 0.45 looking ahead). Any measure whose geometry is degenerate is
    ``nan``.

    ``geometry`` holds every eye and pose measure taken from ``landmarks`` in the mesh pass (the
    eye detector reads it instead of measuring again); it is never stored, so a finding read from
    JSON has none and is measured afresh.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)
    yaw: float
    pitch: float
    roll: float
    ear_right: float
    ear_left: float
    iris_right: float
    iris_left: float
    geometry: FaceGeometry | None = field(default=None, repr=False, compare=False)

    @property
    def ear_mean(self) -> float:
        return (self.ear_right + self.ear_left) / 2.0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; nan becomes None, landmarks are rounded to 0.01 px."""
        measures = {k: None if math.isnan(v) else round(v, 4)
                    for k in _MEASURES for v in [float(getattr(self, k))]}
        return {"box": [round(float(v), 2) for v in self.box], "score": round(self.score, 4),
                "landmarks": np.round(self.landmarks.astype(np.float64), 2).tolist(), **measures}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceFinding:
        x0, y0, x1, y1 = (float(v) for v in data["box"])
        measures: dict[str, Any] = {k: float("nan") if data.get(k) is None else float(data[k]) for k in _MEASURES}
        landmarks = np.asarray(data["landmarks"], dtype=np.float32).reshape(N_LANDMARKS, 3)
        return cls(box=(x0, y0, x1, y1), score=float(data["score"]), landmarks=landmarks, **measures)


_MEASURES = ("yaw", "pitch", "roll", "ear_right", "ear_left", "iris_right", "iris_left")


# --- MediaPipe graphs: created lazily, one set per process. -------------------------------------
# Building a graph costs far more than running it, and graphs are not thread-safe: one set per
# process is reused under a lock (parallelism comes from worker processes).

_graphs: dict[tuple[str, float], Any] = {}
_graphs_pid: int | None = None
_graphs_lock = threading.Lock()


class ForkedAfterUseError(RuntimeError):
    """MediaPipe was used in a parent process that then forked this one."""


def _graph(kind: str, confidence: float) -> Any:
    global _graphs_pid
    key = (kind, round(confidence, 3))
    graph = _graphs.get(key)
    if graph is None:
        import mediapipe as mp  # heavy import, kept out of module import time

        with logs.native_stderr() as captured:
            if kind.startswith("mesh"):
                graph = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                        max_num_faces=int(kind[4:]),
                                                        min_detection_confidence=confidence)
                _bind_mesh_internals()
            else:
                graph = mp.solutions.face_detection.FaceDetection(
                    model_selection=1 if kind == "full" else 0, min_detection_confidence=confidence)
        _hand_on(captured)
        _graphs[key] = graph
        _graphs_pid = os.getpid()
    return graph


def _run(graph: Any, image: np.ndarray) -> Any:
    """``graph.process(image)`` with the C++ log lines it prints caught (see the module doc)."""
    image = _shared(image)
    with logs.native_stderr() as captured:
        result = graph.process(image)
    _hand_on(captured)
    return result


def _shared(image: np.ndarray) -> np.ndarray:
    """A read-only view of a C-contiguous image, which MediaPipe wraps in its packet as it is; a
    writable array it copies first (3 MB for a 1024 px crop, a tenth of the mesh's time). Every
    call here returns once the graph is idle, so the caller's array is not read afterwards."""
    if image.flags.c_contiguous and image.flags.writeable:
        image = image.view()
        image.flags.writeable = False
    return image


def _mesh_wire(graph: Any, image: np.ndarray) -> list[bytes]:
    """The serialized NormalizedLandmarkList of every face a FaceMesh graph finds in ``image``,
    C++ log lines caught as in :func:`_run`.

    ``FaceMesh.process`` is what runs here, less what it does in Python on top of the graph: a
    named-tuple class made afresh on every call, and every face's protobuf parsed from the bytes
    that the landmark reader turns straight into an array. A graph without the
    ``SolutionBase`` internals of the pinned MediaPipe goes through ``process`` instead."""
    image = _shared(image)
    packets = getattr(graph, "_graph_outputs", None)
    runner = getattr(graph, "_graph", None)
    if not isinstance(packets, dict) or runner is None or _serialized_protos is None:
        return [face.SerializeToString() for face in _run(graph, image).multi_face_landmarks or []]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("Input image must contain three channel rgb data.")
    packets.clear()
    graph._simulated_timestamp += 33333  # as process() does: a 30 fps stream
    packet = graph._make_packet(_IMAGE, image).at(graph._simulated_timestamp)
    with logs.native_stderr() as captured:
        runner.add_packet_to_input_stream(stream=_MESH_INPUT, packet=packet)
        runner.wait_until_idle()
    _hand_on(captured)
    landmarks = packets.get(_MESH_OUTPUT)
    return [] if landmarks is None or landmarks.is_empty() else list(_serialized_protos(landmarks))


_MESH_INPUT, _MESH_OUTPUT = "image", "multi_face_landmarks"
_IMAGE: Any = None
_serialized_protos: Any = None


def _bind_mesh_internals() -> None:
    """What :func:`_mesh_wire` needs of MediaPipe, looked up once a mesh graph exists."""
    global _IMAGE, _serialized_protos
    try:
        from mediapipe.python._framework_bindings import _packet_getter
        from mediapipe.python.solution_base import PacketDataType

        _IMAGE, _serialized_protos = PacketDataType.IMAGE, _packet_getter._get_serialized_proto_list
    except (ImportError, AttributeError):  # another MediaPipe: process() it is
        _IMAGE = _serialized_protos = None


def _hand_on(captured: logs.Captured) -> None:
    """What MediaPipe printed: its C++ notes dropped, its errors logged, anything else passed on."""
    if captured.text:
        logs.emit(logs.drop_native_log_lines(captured.text, log, source="mediapipe"))


def _measure(pts: np.ndarray, score: float) -> FaceFinding:
    """The finding of one mesh, every measure taken once (:func:`faces.measures.face_geometry`)."""
    xs, ys = pts[:, 0], pts[:, 1]  # a reduction per column: over axis 0 of the strided pair it costs ten times more
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    g = face_geometry(pts)
    return FaceFinding(
        box=(float(x0), float(y0), float(x1), float(y1)), score=float(score), landmarks=pts,
        yaw=g.yaw, pitch=g.pitch, roll=g.roll, ear_right=g.ear_right, ear_left=g.ear_left,
        iris_right=g.iris_right, iris_left=g.iris_left, geometry=g,
    )


def _area(b: tuple[float, ...]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _dedup(items: list[Any], box_of: Any) -> list[Any]:
    """Greedy suppression: keep items in order unless they overlap one already kept."""
    kept: list[Any] = []
    for item in items:
        if all(_iou(box_of(item), box_of(k)) < DEDUP_IOU for k in kept):
            kept.append(item)
    return kept


def _downscale(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer-factor box downscale: exact coordinate mapping and OpenCV's fast area path."""
    h, w = rgb.shape[:2]
    f = max(1, math.ceil(max(h, w) / DETECT_LONG_EDGE))
    if f == 1:
        return np.ascontiguousarray(rgb), 1
    src = rgb[: h // f * f, : w // f * f]
    return cv2.resize(src, (w // f, h // f), interpolation=cv2.INTER_AREA), f


def _tiles(h: int, w: int) -> list[tuple[int, int, int]]:
    """Overlapping square tiles (x, y, side) that show small faces to the detector larger."""
    side = int(min(h, w, TILE_FRACTION * max(h, w)))
    if max(h, w) < MIN_TILED_EDGE or side < 64:
        return []
    step = side * (1.0 - TILE_OVERLAP)

    def starts(extent: int) -> list[int]:
        n = max(1, math.ceil((extent - side) / step) + 1)
        return [round(i * (extent - side) / (n - 1)) if n > 1 else 0 for i in range(n)]

    return [(x, y, side) for y in starts(h) for x in starts(w)]


def _detect(small: np.ndarray, confidence: float) -> list[tuple[tuple[float, ...], float]]:
    """Boxes (x0, y0, x1, y1) in ``small`` pixels with scores, best first, overlaps merged."""
    found: list[tuple[tuple[float, ...], float]] = []

    def run(kind: str, image: np.ndarray, ox: int, oy: int) -> None:
        h, w = image.shape[:2]
        for det in _run(_graph(kind, confidence), image).detections or []:
            b = det.location_data.relative_bounding_box
            x0, y0 = ox + b.xmin * w, oy + b.ymin * h
            box = (x0, y0, x0 + b.width * w, y0 + b.height * h)
            if box[2] - box[0] > 1 and box[3] - box[1] > 1:
                found.append((box, float(det.score[0])))

    run("full", small, 0, 0)
    run("short", small, 0, 0)  # the full-range model misses faces that fill the frame
    for x, y, side in _tiles(*small.shape[:2]):
        run("full", np.ascontiguousarray(small[y:y + side, x:x + side]), x, y)
    found.sort(key=lambda bs: -bs[1])
    return _dedup(found, lambda bs: bs[0])


Crop = tuple[np.ndarray, int, int, float]  # pixels, origin x and y in the source, source px per crop px


def _square_crop(src: np.ndarray, cx: float, cy: float, side: float) -> Crop | None:
    """MESH_SIZE square showing ``side`` source pixels around (cx, cy), black outside ``src``."""
    h, w = src.shape[:2]
    n = max(1, int(round(side)))
    x0, y0 = int(round(cx - n / 2)), int(round(cy - n / 2))
    region = src[max(0, y0):max(0, min(h, y0 + n)), max(0, x0):max(0, min(w, x0 + n))]
    if region.size == 0:
        return None
    top, left = max(0, -y0), max(0, -x0)
    square = cv2.copyMakeBorder(region, top, n - top - region.shape[0], left,
                                n - left - region.shape[1], cv2.BORDER_CONSTANT, value=(0, 0, 0))
    interp = cv2.INTER_AREA if n > MESH_SIZE else cv2.INTER_LINEAR
    return cv2.resize(square, (MESH_SIZE, MESH_SIZE), interpolation=interp), x0, y0, n / MESH_SIZE


# A NormalizedLandmarkList of 478 points with x, y and z set (and no visibility or presence) is,
# on the wire, 478 records of 17 bytes: field 1 (landmark) of length 15, then fields 1, 2 and 3
# as 32-bit floats, at bytes 3, 8 and 13 of each record. Reading them in one go costs microseconds
# where 1,434 attribute reads cost most of a millisecond; any other layout is read point by point.
_WIRE_STEP = 17
_WIRE_KEYS = {offset: bytes([key]) * N_LANDMARKS for offset, key in ((0, 0x0A), (1, 15), (2, 0x0D), (7, 0x15), (12, 0x1D))}


def _landmark_array(face: Any) -> np.ndarray:
    """(n, 3) normalised landmarks of one FaceMesh face (float32 off the wire, else float64)."""
    return _wire_landmarks(face.SerializeToString(), face)


def _wire_landmarks(wire: bytes, face: Any = None) -> np.ndarray:
    """:func:`_landmark_array` of a face's serialized NormalizedLandmarkList (``face``: the same
    message parsed, if at hand)."""
    if len(wire) == N_LANDMARKS * _WIRE_STEP and all(wire[o::_WIRE_STEP] == k for o, k in _WIRE_KEYS.items()):
        # x, y and z lie 5 bytes apart in every record: one strided view of the bytes, read-only.
        return np.ndarray((N_LANDMARKS, 3), np.dtype("<f4"), wire, 3, (_WIRE_STEP, 5))
    if face is None:
        from mediapipe.framework.formats import landmark_pb2

        face = landmark_pb2.NormalizedLandmarkList.FromString(wire)
    return np.fromiter((c for p in face.landmark for c in (p.x, p.y, p.z)), np.float64).reshape(-1, 3)


def _mesh(image: np.ndarray, graph: Any, dtype: type[np.floating] = np.float64) -> list[np.ndarray]:
    """FaceMesh landmarks as (478, 3) arrays in ``image`` pixels (z scaled like x), of ``dtype``.
    In float32 they are the float64 ones rounded: a float32 landmark times a whole number of
    pixels is exact in float64, and float32 arithmetic rounds that exact product the same way."""
    h, w = image.shape[:2]
    scale = np.array([w, h, w], dtype)
    out = []
    for wire in _mesh_wire(graph, image):
        a = _wire_landmarks(wire)
        if a.shape == (N_LANDMARKS, 3):
            pts = np.multiply(a, scale, dtype=dtype)
            if np.isfinite(pts).all():
                out.append(pts)
    return out


def _mesh_in_box(rgb: np.ndarray, small: np.ndarray, factor: int, box: tuple[float, ...],
                 confidence: float) -> np.ndarray | None:
    """Mesh the face in ``box`` (``small`` pixels); landmarks in ``rgb`` pixels, or None."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = CROP_MARGIN * max(box[2] - box[0], box[3] - box[1])
    # The downscaled copy is as good as the full frame once the crop needs shrinking anyway.
    if side >= MESH_SIZE or factor == 1:
        src, k = small, factor
    else:
        src, k = rgb, 1
        cx, cy, side = cx * factor, cy * factor, side * factor
    cropped = _square_crop(src, cx, cy, side)
    if cropped is None:
        return None
    meshes = _mesh(cropped[0], _graph("mesh1", confidence))
    if not meshes:
        return None
    _, ox, oy, scale = cropped
    pts = meshes[0] * scale + [ox, oy, 0.0]
    pts *= k
    # A crop can hold a neighbour's face; keep the mesh only if it is centred in the box.
    cxi, cyi = pts[:, 0].mean() / factor, pts[:, 1].mean() / factor
    if not (box[0] <= cxi <= box[2] and box[1] <= cyi <= box[3]):
        log.debug("mesh centre (%.0f, %.0f) outside detector box %s", cxi, cyi, box)
        return None
    return pts.astype(np.float32)


def find_faces(rgb: np.ndarray, *, max_faces: int = 5, min_confidence: float = 0.5) -> list[FaceFinding]:
    """Faces in an orientation-corrected HxWx3 uint8 RGB frame, largest first.

    Frames too small to hold a face give an empty list. In a worker process forked from one
    that already called this function, raises :class:`ForkedAfterUseError`.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise TypeError(f"expected uint8 RGB, got {rgb.dtype}")
    if min(rgb.shape[:2]) < MIN_IMAGE_EDGE or max_faces < 1:
        return []
    if _graphs_pid not in (None, os.getpid()):
        # MediaPipe's global state does not survive fork(): any new graph corrupts the heap.
        raise ForkedAfterUseError("faces were searched in the parent before this worker was forked; "
                                  "start worker processes with the 'spawn' or 'forkserver' method")
    rgb = np.ascontiguousarray(rgb)  # MediaPipe and OpenCV want positive strides
    with _graphs_lock:
        findings = _find(rgb, max_faces, min_confidence)
    findings.sort(key=lambda f: -_area(f.box))
    kept = _dedup(findings, lambda f: f.box)
    log.debug("found %d face(s) in %dx%d frame", len(kept), rgb.shape[1], rgb.shape[0])
    return kept[:max_faces]


def mesh_aligned_face(rgb: np.ndarray, *, min_confidence: float = 0.5) -> FaceFinding | None:
    """The face of an image framed around one face (an aligned crop, a generated face), meshed
    directly at the mesh's working size without the detector pass; None if no face is seen."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    if min(rgb.shape[:2]) < MIN_IMAGE_EDGE:
        return None
    if _graphs_pid not in (None, os.getpid()):
        raise ForkedAfterUseError("faces were searched in the parent before this worker was forked; "
                                  "start worker processes with the 'spawn' or 'forkserver' method")
    # FaceMesh finds and crops the face itself and reads it at 192 px: the image goes as it is
    # (no copy, no resize) unless it is over ALIGNED_MESH_EDGE, then shrunk by a whole factor.
    h, w = rgb.shape[:2]
    factor = max(1, math.ceil(max(h, w) / ALIGNED_MESH_EDGE))
    small = cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA) if factor > 1 else rgb
    with _graphs_lock:
        meshes = _mesh(np.ascontiguousarray(small), _graph("mesh1", min_confidence),
                       np.float32 if factor == 1 else np.float64)
    if not meshes:
        return None
    pts = meshes[0] if factor == 1 else meshes[0] * [w / small.shape[1], h / small.shape[0], w / small.shape[1]]
    return _measure(pts.astype(np.float32, copy=False), min_confidence)


def _find(rgb: np.ndarray, max_faces: int, confidence: float) -> list[FaceFinding]:
    small, factor = _downscale(rgb)
    findings: list[FaceFinding] = []
    # Detector false positives are cheap to reject but each costs a mesh run: cap them.
    for box, score in _detect(small, confidence)[: 2 * max_faces + 2]:
        pts = _mesh_in_box(rgb, small, factor, box, confidence)
        if pts is not None:
            findings.append(_measure(pts, score))
    if not findings:
        # Close-ups can defeat both detectors while FaceMesh's own pipeline still copes. It
        # gives no score; the detection threshold it passed is a lower bound.
        for pts in _mesh(small, _graph(f"mesh{max_faces}", confidence)):
            box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
            refined = _mesh_in_box(rgb, small, factor, box, confidence)
            if refined is None:
                refined = (pts * factor).astype(np.float32)
            findings.append(_measure(refined, confidence))
    return findings
