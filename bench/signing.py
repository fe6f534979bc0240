"""Benchmark: the cost of Content Credentials per exported face, next to writing the PNG alone.

    python -m bench.signing [--images 50] [--size 256] [--rounds 3] [--json PATH]

Both sides write the same ``--images`` generated-face-sized PNGs (seeded noise, ``--size``
pixels square) to a temporary folder, atomically, as an export does: the baseline writes the
render's bytes; ours first signs them (``model_registry.provenance.PngSigner``: IPTC XMP, then a
C2PA manifest signed offline by a local CA's leaf, made for the run). Rounds alternate the two
sides. Prints ms per image (min and median over rounds), the ratio, the signed file's growth and
the load line; the last line of stdout is the figures as JSON.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.harness import CpuMeter, emit, explicit_settings, load_line, stats


def renders(count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from likeness.files import write_bytes_atomic
    from model_registry.provenance import GenerationFacts, PngSigner
    from model_registry.signing import load_identity

    pngs = renders(args.images, args.size)
    facts = GenerationFacts(seed=0, psi=0.7, label=None, checkpoint_id=1, checkpoint_sha256="0" * 64,
                            snapshot_hash="1" * 64, noise_mode="const")
    figures: dict[str, list[float]] = {"plain_ms": [], "signed_ms": []}
    grown: list[float] = []
    meter = CpuMeter().start()
    with tempfile.TemporaryDirectory() as scratch:
        identity = load_identity(explicit_settings(data_dir=Path(scratch) / "data"))
        with PngSigner(identity) as signer:
            signer.sign(pngs[0], facts=facts)   # warm: the library and the key are loaded once per export
            for round_ in range(args.rounds):
                folder = Path(scratch) / f"round{round_}"
                folder.mkdir()
                start = time.perf_counter()
                for i, png in enumerate(pngs):
                    write_bytes_atomic(folder / f"plain{i}.png", png)
                figures["plain_ms"].append((time.perf_counter() - start) / len(pngs) * 1000)
                start = time.perf_counter()
                for i, png in enumerate(pngs):
                    signed_png = signer.sign(png, facts=facts, title=f"seed{i}.png")
                    write_bytes_atomic(folder / f"signed{i}.png", signed_png)
                    grown.append(len(signed_png) - len(png))
                figures["signed_ms"].append((time.perf_counter() - start) / len(pngs) * 1000)
    plain, signed = stats(figures["plain_ms"]), stats(figures["signed_ms"])
    report = {"images": args.images, "size": args.size, "rounds": args.rounds, "plain_ms": plain, "signed_ms": signed,
              "ratio_median": signed["median"] / plain["median"], "bytes_added_median": float(np.median(grown)),
              "load": meter.stop()}
    print(f"{args.images} PNGs of {args.size}x{args.size}, {args.rounds} rounds")
    print(f"  write the PNG alone: min {plain['min']:.2f} ms, median {plain['median']:.2f} ms per image")
    print(f"  sign (XMP + C2PA) and write: min {signed['min']:.2f} ms, median {signed['median']:.2f} ms per image "
          f"= {report['ratio_median']:.1f}x; the manifest adds {report['bytes_added_median'] / 1024:.1f} KiB")
    print(f"  {load_line(report['load'])}")
    return emit(report, args.json)


if __name__ == "__main__":
    main()
