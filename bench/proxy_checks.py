"""Benchmark: how well the automatic checks on generated faces catch artifacts made by code on
real faces (the proxy set), and what they cost next to the bare mediapipe FaceMesh call.

    python -m bench.proxy_checks [--rounds 3] [--calibrate]

The proxy set (:mod:`samples.proxy_faces`) is built, and every check runs on each held-out
item: for each check, the share of each artifact type it flags (recall) and of the good items
(false positives). The timing alternates, round after round, our check_face over every held-out
item with the bare FaceMesh call on the same images, so that machine noise falls on both; the
ratio of the two medians is the figure to watch. ``--calibrate`` prints each measure's 95th
percentile over the good *train* items (the four eye measures of the symmetry check: their 99th),
the recipe for :mod:`qa.generated.thresholds`. The load
line says how busy the rest of the machine was; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import numpy as np
from rich.console import Console

from bench.harness import CpuMeter, alternate, load_line, stats
from samples.proxy_faces import ARTIFACTS, build_proxy_set

console = Console()
CHECKS = ("face_found", "plausible", "eyes", "eye_flatness", "alignment", "symmetry", "sides", "craters", "background")


def _per_ms(fn, images) -> float:
    start = time.perf_counter()
    for image in images:
        fn(image)
    return (time.perf_counter() - start) / len(images) * 1000.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("faces").setLevel(logging.ERROR)
    import mediapipe as mp

    from qa.generated import pixels as px
    from qa.generated.checks import check_face, symmetry_parts

    start = time.perf_counter()
    items = build_proxy_set()
    build_s = time.perf_counter() - start
    held = [i for i in items if i.split == "held_out"]
    results = [(item, check_face(item.image).checks) for item in held]
    recall: dict[str, dict[str, float]] = {}
    for name in CHECKS:
        row = {a: float(np.mean([c[name]["flagged"] for i, c in results if i.artifact == a])) for a in ARTIFACTS}
        row["good_fpr"] = float(np.mean([c[name]["flagged"] for i, c in results if i.good]))
        recall[name] = row
    any_flag = {a: float(np.mean([any(v["flagged"] for v in c.values()) for i, c in results if i.artifact == a]))
                for a in (*ARTIFACTS, "none")}
    console.print(f"proxy set: {len(items)} items ({len(held)} held out) built in {build_s:.1f} s")
    console.print("check".ljust(12) + "".join(a[:10].rjust(11) for a in ARTIFACTS) + "good fpr".rjust(10))
    for name, row in recall.items():
        console.print(name.ljust(12) + "".join(f"{row[a]:11.2f}" for a in ARTIFACTS) + f"{row['good_fpr']:10.2f}")
    console.print("any check".ljust(12) + "".join(f"{any_flag[a]:11.2f}" for a in ARTIFACTS) + f"{any_flag['none']:10.2f}")

    calibration: dict[str, Any] = {}
    if args.calibrate:
        train_good = [(i.image, check_face(i.image)) for i in items if i.split == "train" and i.good]
        for name in ("alignment", "sides", "craters", "background", "eye_flatness"):
            values = [f.checks[name]["value"] for _, f in train_good if f.checks[name]["value"] is not None]
            calibration[name] = round(float(np.percentile(values, 95)), 4)
        console.print(f"95th percentiles on good train items: {calibration}")
        parts: dict[str, list[float]] = {}
        for image, found in train_good:
            if found.finding is not None:
                small, pts = px.scaled(image, found.finding.landmarks)
                for name, value in symmetry_parts(px.lab(small), pts).items():
                    parts.setdefault(name, []).append(value)
        eyes = {name: round(float(np.percentile(values, 99)), 4) for name, values in parts.items()}
        calibration["symmetry_parts"] = eyes
        console.print(f"99th percentiles of the eye measures on good train items: {eyes}")

    images = [i.image for i in held]
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                           min_detection_confidence=0.5)
    meter = CpuMeter().start()
    bare, ours = alternate(range(args.rounds), [lambda _r: _per_ms(mesh.process, images),
                                                lambda _r: _per_ms(check_face, images)])
    load = meter.stop()
    b, o = stats(bare), stats(ours)
    console.print(f"ms per image, {len(images)} images x {args.rounds} rounds: bare FaceMesh min {b['min']:.1f} "
                  f"median {b['median']:.1f}; check_face min {o['min']:.1f} median {o['median']:.1f} "
                  f"(ratio of medians {o['median'] / b['median']:.2f})")
    console.print(load_line(load))
    report = {"items": len(items), "held_out": len(held), "build_s": round(build_s, 2), "recall": recall,
              "any_check": any_flag, "ms_bare_mesh": b, "ms_check_face": o,
              "ratio_of_medians": o["median"] / b["median"], "calibration": calibration, "load": load}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
