"""Benchmark: faces per second through the eye-state detector + shot QA on aligned crops, against
the bare mediapipe FaceMesh call on the same images in the same run.

    python -m bench.qa [--crops 1024] [--size 1024] [--block 64]

The crops are aligned faces cut from real photographs (the shared test faces and the portrait
bundled with scikit-image), each jittered (scale, rotation, shift, brightness, mirror) so that
no two are identical. Both sides run in this process, in alternating blocks, so that machine
noise falls on both; the ratio of the two rates is the figure to watch (target <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.harness import REPO, alternate, compare, testdata_dir, timed, verdict
from faces.align import align_face, ffhq_quad
from faces.detect import find_faces
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
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--review-page", action="store_true",
                        help="also time the review page in Debian chromium (48-face grid after navigation)")
    args = parser.parse_args()

    started = time.perf_counter()
    crops = jittered_crops(args.crops, args.size)
    console.print(f"built {len(crops)} aligned {args.size}px crops in {time.perf_counter() - started:.1f} s")
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)
    mesh.process(crops[0])  # both sides build their graphs before timing
    qa_face_image(crops[0])

    blocks = [crops[start : start + args.block] for start in range(0, len(crops), args.block)]
    bare_blocks, ours_runs = alternate(blocks, [lambda block: bare_mesh(mesh, block) / len(block), detector_and_qa])
    ours_blocks = [elapsed / len(block) for (elapsed, _hits), block in zip(ours_runs, blocks, strict=True)]
    found = sum(hits for _elapsed, hits in ours_runs)
    ratios = compare(bare_blocks, ours_blocks)
    ratio = ratios["ratio_of_means"]
    figures = {
        "crops": len(crops), "size": args.size,
        "bare_mesh_faces_per_s": 1 / statistics.fmean(bare_blocks),
        "detector_qa_faces_per_s": 1 / statistics.fmean(ours_blocks),
        "ratio": ratio, "ratio_median_block": ratios["median_per_round"], "faces_found": found,
    }
    table = Table("figure", "value", title="eye-state detector + shot QA vs bare FaceMesh")
    table.add_row("aligned crops", f"{len(crops)} × {args.size}px ({found} faces found)")
    table.add_row("bare FaceMesh", f"{figures['bare_mesh_faces_per_s']:.1f} faces/s")
    table.add_row("detector + shot QA", f"{figures['detector_qa_faces_per_s']:.1f} faces/s")
    table.add_row("time ratio (ours / bare)", f"{ratio:.3f} (median block {figures['ratio_median_block']:.3f}); "
                  f"target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}")
    console.print(table)
    if args.review_page:
        figures["review_page"] = review_page_timing()
        console.print(figures["review_page"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
