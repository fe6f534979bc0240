"""Benchmark: images/s of mass generation alone, and with the automatic checks, on CPU.

    python -m bench.generate [--images 8] [--rounds 3] [--resolution 256] [--real 500]
                             [--threads 0] [--json PATH]

Both sides render ``--images`` faces per round the way `likeness generate` does (one image at a
time from its seed, training.generate.render, then the PNG); the checked side also does what
`--score` adds per face: decode the PNG and score it with the checkpoint's discriminator (in
its fixed group of mates) and its realism against a real set of ``--real`` images
(training.generated_scores; RandomConvFeatures, as without Inception weights), in batches as
scoring does, with D in the precision scoring picks on this CPU (scoring_dtype). When
qa.generated.checks is importable a third side adds its image checks (`check_face`, what
qa.generated.store.check_images runs per face); random weights rarely draw a face the mesh
finds, so that figure is a lower bound. The networks are preset(RESOLUTION) with random
weights (seed 0): the cost of a forward pass does not depend on what was learned.
The real set's features and radii are computed before timing (they are cached per snapshot).

Rounds alternate baseline and checked sides so that machine noise falls on both. Prints
images/s (min and median over rounds), the ratio of time per image with checks over
generation alone (target <= RATIO_TARGET), and the load line; the last line of stdout is JSON.
The database and blob writes are left out of both sides (they are the same on both). The
filter's coverage/precision and review decisions per minute are measured elsewhere.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import CpuMeter, alternate, compare, cpu_model, emit, load_line, verdict

RATIO_TARGET = 1.5          # time per face with every automatic check over generation alone
PSI = 0.7                   # `likeness generate`'s default truncation


def build(resolution: int, real_count: int) -> dict[str, Any]:
    import torch

    from training import generate as gen
    from training import generated_scores as scores
    from training.metrics.features import RandomConvFeatures
    from training.networks import build_networks, preset

    torch.manual_seed(0)
    network = preset(resolution)
    G, D = build_networks(network)
    G, D = G.eval().requires_grad_(False), scores.for_scoring(D)
    dtype = scores.scoring_dtype()
    loaded = gen.LoadedGenerator(checkpoint_id=0, network=network, G=G, device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (real_count, 3, 8, 8), dtype=np.uint8)
    real_images = torch.nn.functional.interpolate(torch.from_numpy(small).float(), size=(64, 64), mode="bilinear")
    extractor = RandomConvFeatures()
    features = extractor(real_images.to(torch.uint8))
    real, radii = scores.prune(features, scores.knn_radii(features))
    mates_n = D.epilogue.mbstd.group_size - 1
    with torch.no_grad():
        mates = scores.d_features(D, torch.randint(0, 256, (mates_n, 3, resolution, resolution), dtype=torch.uint8),
                                  dtype)
    # The threshold is given: its reference batch is rendered once per checkpoint and psi, not per face.
    scorer = scores.CheckpointScorer(checkpoint_id=0, loaded=loaded, D=D, mates=mates, mates_c=None,
                                     reference_labels=np.zeros([scores.REFERENCE_COUNT, 0], dtype=np.float32),
                                     extractor=extractor, real=real, radii=radii, thresholds={(PSI, "const"): 0.0},
                                     dtype=dtype)
    return {"loaded": loaded, "scorer": scorer}


def generate(loaded: Any, seeds: range) -> list[bytes]:
    from training import generate as gen
    return [gen.png_bytes(gen.render(loaded, [seed], psi=PSI)[0]) for seed in seeds]


def checked(setup: dict[str, Any], seeds: range, *, image_checks: bool) -> None:
    import torch
    from PIL import Image

    from training.generated_scores import BATCH
    pngs = generate(setup["loaded"], seeds)
    arrays = []
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    for start in range(0, len(arrays), BATCH):
        batch = torch.from_numpy(np.stack(arrays[start:start + BATCH])).permute(0, 3, 1, 2).contiguous()
        setup["scorer"].checks(batch, None, psi=PSI)
    if image_checks:
        from qa.generated.checks import check_face
        for array in arrays:
            check_face(array)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--real", type=int, default=500, help="real images behind the realism score")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import qa.generated.checks  # noqa: F401
        image_checks: bool | None = True
    except ImportError:
        image_checks = None

    setup = build(args.resolution, args.real)
    checked(setup, range(10_000, 10_002), image_checks=bool(image_checks))   # warm: first calls allocate
    sides = [lambda r: _per_image(lambda: generate(setup["loaded"], _seeds(r, args.images)), args.images),
             lambda r: _per_image(lambda: checked(setup, _seeds(r, args.images), image_checks=False), args.images)]
    if image_checks:
        sides.append(lambda r: _per_image(lambda: checked(setup, _seeds(r, args.images), image_checks=True),
                                          args.images))
    meter = CpuMeter().start()
    results = alternate(range(args.rounds), sides)
    load = meter.stop()
    scored = compare(results[0], results[1])
    report: dict[str, Any] = {
        "resolution": args.resolution, "images": args.images, "rounds": args.rounds, "real": args.real,
        "cpu": cpu_model(), "threads": torch.get_num_threads(), "weights": "random (seed 0)",
        "discriminator_dtype": str(setup["scorer"].dtype),
        "generate_s_per_image": results[0], "scores_s_per_image": results[1],
        "generate_img_per_s": {"max": 1 / min(results[0]), "median": 1 / scored["baseline"]["median"]},
        "with_scores_img_per_s": {"max": 1 / min(results[1]), "median": 1 / scored["ours"]["median"]},
        "scores_ratio": scored, "target": RATIO_TARGET,
        "image_checks": "not available" if image_checks is None else None, "load": load,
    }
    ratio = scored["ratio_of_medians"]
    print(f"{args.images} faces per round at {args.resolution}x{args.resolution}, {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, random weights, D in {setup['scorer'].dtype}")
    print(f"  generation alone: {report['generate_img_per_s']['median']:.3f} img/s median "
          f"({report['generate_img_per_s']['max']:.3f} best)")
    print(f"  + discriminator and realism: {report['with_scores_img_per_s']['median']:.3f} img/s median, "
          f"{ratio:.2f}x the time per face (target <= {RATIO_TARGET}): {verdict(ratio <= RATIO_TARGET)}")
    if image_checks:
        everything = compare(results[0], results[2])
        report["all_checks_img_per_s"] = {"max": 1 / min(results[2]), "median": 1 / everything["ours"]["median"]}
        report["all_checks_ratio"] = everything
        report["all_checks_s_per_image"] = results[2]
        print(f"  + qa.generated image checks too: {report['all_checks_img_per_s']['median']:.3f} img/s median, "
              f"{everything['ratio_of_medians']:.2f}x (target <= {RATIO_TARGET}): "
              f"{verdict(everything['ratio_of_medians'] <= RATIO_TARGET)} (random faces: a lower bound)")
    else:
        print("  qa.generated image checks: not available")
    print(f"  {load_line(load)}")
    return emit(report, args.json)


def _seeds(round_: int, images: int) -> range:
    return range(round_ * images, (round_ + 1) * images)


def _per_image(fn: Any, images: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / images


if __name__ == "__main__":
    main()
