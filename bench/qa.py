"""Benchmark: faces per second through the eye-state detector + shot QA on aligned crops, against
the bare mediapipe FaceMesh call on the same images in the same run.

    python -m bench.qa [--crops 1024] [--size 1024] [--block 8]

The crops are aligned faces cut from real photographs (the shared test faces and the portrait
bundled with scikit-image), each jittered (scale, rotation, shift, brightness, mirror) so that
no two are identical. Both sides run in this process, in alternating blocks, so that machine
noise falls on both, and each side goes first in every other block, so that neither finds the
block's crops in cache more often; the ratio of the two rates is the figure to watch (target
<= 1.2). The load line says how busy the rest of the machine was meanwhile.

A second, instrumented pass over the same crops then breaks our time per face down by step:
the mesh graph, reading its landmarks, the measures, the eye decision and the shot checks
(what is left is glue), next to the bare mesh timed in the same pass, on each crop as it is and
on a read-only view of it (which MediaPipe takes without copying, as our mesh step does), the
three taking turns at going first.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.harness import REPO, CpuMeter, Step, StepClock, available, compare, load_line, testdata_dir, timed, verdict
from faces.align import align_face, ffhq_quad
from faces.detect import find_faces
from likeness import logs
from qa.api import qa_face_image
from qa.eyes import load_upright

console = Console()
TARGET_RATIO = 1.2


def source_faces() -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, landmarks) of every real face available offline."""
    from skimage import data

    images = [data.astronaut()]
    testdata = testdata_dir()
    for label in ("open", "closed", "crossed"):
        images += [load_upright(p) for p in sorted((testdata / "faces" / label).glob("*")) if p.is_file()]
    faces = []
    for rgb in images:
        for finding in find_faces(rgb):
            faces.append((rgb, finding.landmarks))
    return faces


def jittered_crops(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    faces = source_faces()
    crops = []
    for index in range(count):
        rgb, landmarks = faces[index % len(faces)]
        quad = ffhq_quad(landmarks)
        centre = quad.mean(axis=0)
        angle = np.deg2rad(rng.uniform(-8, 8))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        side = np.linalg.norm(quad[3] - quad[0])
        quad = (quad - centre) @ rotation.T * rng.uniform(0.92, 1.08) + centre + rng.uniform(-0.04, 0.04, 2) * side
        crop = align_face(rgb, quad, size).astype(np.float32) * rng.uniform(0.85, 1.15)
        crop = np.clip(crop, 0, 255).astype(np.uint8)
        crops.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return crops


def bare_mesh(mesh, crops: list[np.ndarray]) -> float:
    def run() -> None:
        for crop in crops:
            mesh.process(crop)

    return timed(run)[0]


def detector_and_qa(crops: list[np.ndarray]) -> tuple[float, int]:
    return timed(lambda: sum(qa_face_image(crop).found for crop in crops))


# Our side's steps, disjoint; a step whose function the code does not have is left out.
STEPS = (
    Step("mesh", "faces.detect", "_mesh_wire"),  # the FaceMesh graph with fd 2 caught, its landmarks as bytes
    Step("mesh", "faces.detect", "_run"),  # older code: graph.process with fd 2 caught
    Step("landmarks", "faces.detect", "_wire_landmarks"),
    Step("landmarks", "faces.detect", "_landmark_array"),
    Step("measures", "faces.detect", "_measure"),
    Step("measures", "qa.eyes", "measure_face"),
    Step("decision", "qa.eyes", "_decide"),
    Step("decision", "qa.eyes:EyeVerdict", "to_json"),
    Step("shot checks", "qa.api", "face_window"),
    Step("shot checks", "qa.api", "measure_shot"),
    Step("shot checks", "qa.api", "check_json"),
)
STEP_NAMES = ("mesh", "landmarks", "measures", "decision", "shot checks")


def our_steps() -> list[Step]:
    steps = available(STEPS)
    if not any(step.name == "mesh" for step in steps):  # older code: the whole mesh call, landmarks read
        steps.append(Step("mesh", "faces.detect", "_mesh"))
    return steps


def read_only(crop: np.ndarray) -> np.ndarray:
    view = crop.view()
    view.flags.writeable = False
    return view


def take_turns(blocks: list[list[np.ndarray]], mesh) -> tuple[list[float], list[tuple[float, int]]]:
    """Seconds per face of the bare mesh and (seconds, faces found) of ours, block by block; the
    two alternate block after block, and each goes first in every other block."""
    bare: list[float] = []
    ours: list[tuple[float, int]] = []
    for index, block in enumerate(blocks):
        for side in ("bare", "ours") if index % 2 == 0 else ("ours", "bare"):
            if side == "bare":
                bare.append(bare_mesh(mesh, block) / len(block))
            else:
                ours.append(detector_and_qa(block))
    return bare, ours


def breakdown(mesh, crops: list[np.ndarray]) -> dict[str, float]:
    """Milliseconds per face of each step of ours, of the glue around them, and of the bare mesh
    on each crop as it is and on a read-only view, from one instrumented pass over ``crops``
    (on each crop the three run in turn, each going first on every third crop)."""
    clock = StepClock()
    totals = [0.0, 0.0, 0.0]  # ours, bare, bare read-only
    restore = clock.instrument(our_steps())
    try:
        for index, crop in enumerate(crops):
            runs = [functools.partial(qa_face_image, crop), functools.partial(mesh.process, crop),
                    functools.partial(mesh.process, read_only(crop))]
            for turn in range(3):
                side = (index + turn) % 3
                totals[side] += timed(runs[side])[0]
    finally:
        restore()
    ours, bare, bare_read_only = totals
    per_face = {name: 1000 * clock.seconds(name)[0] / len(crops) for name in STEP_NAMES}
    per_face["glue"] = 1000 * ours / len(crops) - sum(per_face.values())
    per_face["total"] = 1000 * ours / len(crops)
    per_face["bare mesh"] = 1000 * bare / len(crops)
    per_face["bare mesh, read-only view"] = 1000 * bare_read_only / len(crops)
    return per_face


def review_page_timing() -> str:
    """The browser test drives the real page on a queue of real faces and prints its timings
    (measured with performance.now() in the page): run it and hand its line on."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
               "tests/ui/test_review_browser.py", "-k", "sqlite"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith("review page (")]
    if run.returncode != 0 or not lines:
        raise SystemExit(f"the review-page run failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    return lines[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=1024)
    parser.add_argument("--size", type=int, default=1024, help="side of each aligned crop")
    parser.add_argument("--block", type=int, default=8, help="images per alternating block")
    parser.add_argument("--breakdown", type=int, default=256, help="crops in the instrumented pass (per-step times)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--review-page", action="store_true",
                        help="also time the review page in Debian chromium (48-face grid after navigation)")
    args = parser.parse_args()

    started = time.perf_counter()
    crops = jittered_crops(args.crops, args.size)
    console.print(f"built {len(crops)} aligned {args.size}px crops in {time.perf_counter() - started:.1f} s")
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)
    with logs.native_stderr() as first:  # both sides build their graphs before timing
        mesh.process(crops[0])
    logs.emit(logs.drop_native_log_lines(first.text, logging.getLogger("bench.qa"), source="mediapipe"))
    qa_face_image(crops[0])

    blocks = [crops[start : start + args.block] for start in range(0, len(crops), args.block)]
    meter = CpuMeter().start()
    bare_blocks, ours_runs = take_turns(blocks, mesh)
    load = meter.stop()
    steps = breakdown(mesh, crops[: args.breakdown])
    ours_blocks = [elapsed / len(block) for (elapsed, _hits), block in zip(ours_runs, blocks, strict=True)]
    found = sum(hits for _elapsed, hits in ours_runs)
    ratios = compare(bare_blocks, ours_blocks)
    ratio = ratios["ratio_of_means"]
    figures = {
        "crops": len(crops), "size": args.size,
        "bare_mesh_faces_per_s": 1 / statistics.fmean(bare_blocks),
        "detector_qa_faces_per_s": 1 / statistics.fmean(ours_blocks),
        "ratio": ratio, "ratio_median_block": ratios["median_per_round"], "faces_found": found,
        "other_load": load["other_load"], "cpu_s": load["cpu_s"], "steps_ms_per_face": steps,
    }
    table = Table("figure", "value", title="eye-state detector + shot QA vs bare FaceMesh")
    table.add_row("aligned crops", f"{len(crops)} × {args.size}px ({found} faces found)")
    table.add_row("bare FaceMesh", f"{figures['bare_mesh_faces_per_s']:.1f} faces/s")
    table.add_row("detector + shot QA", f"{figures['detector_qa_faces_per_s']:.1f} faces/s")
    table.add_row("time ratio (ours / bare)", f"{ratio:.3f} (median block {figures['ratio_median_block']:.3f}); "
                  f"target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}")
    console.print(table)
    steps_table = Table("step", "ms per face", "share of ours",
                        title=f"where our time goes (instrumented pass, {min(len(crops), args.breakdown)} crops)")
    for name in (*STEP_NAMES, "glue"):
        steps_table.add_row(name, f"{steps[name]:.3f}", f"{100 * steps[name] / steps['total']:.1f} %")
    steps_table.add_row("ours in all", f"{steps['total']:.3f}", "100 %")
    steps_table.add_row("bare mesh, same pass", f"{steps['bare mesh']:.3f}",
                        f"ratio {steps['total'] / steps['bare mesh']:.3f}")
    steps_table.add_row("bare mesh, read-only view", f"{steps['bare mesh, read-only view']:.3f}",
                        f"ratio {steps['total'] / steps['bare mesh, read-only view']:.3f}")
    console.print(steps_table)
    console.print(load_line(load))
    if args.review_page:
        figures["review_page"] = review_page_timing()
        console.print(figures["review_page"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
