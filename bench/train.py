"""Training benchmark: our StyleGAN2 training steps against the peer `stylegan2-pytorch` on CPU.

    python -m bench.train [--iters 32] [--warmup 4] [--rounds 2] [--threads 2]
                          [--peer-venv .venv-sgpeer] [--no-peer] [--json PATH]

The matched configuration (/work/shared/peer_stylegan/README.md): 64x64 RGB, batch 8,
z = w = 512, 8 mapping layers, G widths 4:256 .. 64:16, D widths 64:32 .. 4:512, which for us is
preset(64, z_dim=512, w_dim=512, mapping_layers=8, channel_max=512, g_channel_base=1024,
d_channel_base=2048). One iteration is one D step and one G step.

* Ours: `training.loop.train` itself, in a subprocess of its own (so that its peak RSS is ours
  alone), on 64 random 64x64 PNGs read by the real dataset class (workers=0: decoding is timed
  too), one progress tick per step; the timed steps are `--iters` steps after `--warmup`, with
  our regularisers at their own intervals (R1 every 16 steps, path length every 4), style mixing
  0.9, G_ema every step, augmentation off (the peer has none), convolutions in channels_last
  memory format (`--no-channels-last` to compare; the same maths either way).
* Peer: the shared `time_peer.py` harness in its own venv (`--peer-venv`, built from PyPI the
  way its README says when missing), in its steady phase (gradient penalty every 4 steps, path
  length every 32, EMA every 10) on an in-memory pool.

The two alternate, round after round, so machine noise falls on both. Each timed run records
how busy the rest of the machine was (bench.harness); the ratio of img/s is the figure to watch
(target >= 1.5) with our peak RSS at most the peer's. The last line of stdout is the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    QUIET_LOAD,
    REPO,
    CpuMeter,
    alternate,
    compare,
    cpu_model,
    peak_rss_mib,
    verdict,
    wait_for_quiet,
)

PEER_DIR = Path(os.environ.get("LIKENESS_PEER_STYLEGAN", REPO.parent / "shared" / "peer_stylegan"))
RATIO_TARGET = 1.5          # our img/s over the peer's
RESOLUTION, BATCH, POOL = 64, 8, 64
PEER_NETWORK = dict(z_dim=512, w_dim=512, mapping_layers=8, channel_max=512, g_channel_base=1024,
                    d_channel_base=2048)
PEER_CAPACITY = 8           # lucidrains width knob giving the same widths (README)
PEER_PACKAGES = (["torch==2.13.0"],
                 ["numpy", "pillow", "einops", "fire", "retry", "tqdm", "psutil", "kornia==0.9.0"],
                 ["--no-deps", "stylegan2-pytorch==1.9.0", "vector-quantize-pytorch==0.1.0"])


# ---- Ours, in a worker process. ----------------------------------------------------------------

def run_ours_worker(iters: int, warmup: int, threads: int, channels_last: bool, out: Path) -> None:
    """Time `train()` steps in this process and write the figures to `out` as JSON."""
    import numpy as np
    import torch
    from PIL import Image

    from training.config import TrainConfig
    from training.loop import train
    from training.networks import build_networks, preset

    network = preset(RESOLUTION, **PEER_NETWORK, channels_last=channels_last)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i in range(POOL):
            Image.fromarray(rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8)).save(
                data / f"{i:03d}.png")
        steps = warmup + iters
        config = TrainConfig(data=str(data), out_dir=str(Path(tmp) / "run"), network=network, batch=BATCH,
                             total_kimg=steps * BATCH / 1000, kimg_per_tick=BATCH / 1000, snapshot_kimg=1e6,
                             augment="off", workers=0, threads=threads, grid_samples=BATCH)
        ticks: list[float] = []
        cpu_marks: list[float] = []

        def tick(progress: Any) -> None:
            ticks.append(progress.sec_per_kimg * BATCH / 1000)
            cpu_marks.append(time.process_time())

        started = time.perf_counter()
        train(config, resume=None, progress_fn=tick)
        wall = time.perf_counter() - started
    timed = ticks[warmup:]
    cpu = cpu_marks[-1] - cpu_marks[warmup - 1] if warmup > 0 else cpu_marks[-1]
    G, D = build_networks(network)
    figures = {
        "img_per_s": BATCH * len(timed) / sum(timed),
        "sec_per_kimg": sum(timed) / (BATCH * len(timed)) * 1000,
        "median_step_s": statistics.median(timed),
        "per_step_s": [round(t, 4) for t in ticks],
        "cpu_over_wall": cpu / sum(timed),
        "cpu_sec_per_kimg": cpu / (BATCH * len(timed)) * 1000,
        "peak_rss_mib": peak_rss_mib(),
        "params": {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())},
        "threads": torch.get_num_threads(),
        "total_wall_s": wall,
    }
    out.write_text(json.dumps(figures))


def time_ours(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / "ours.json"
    meter = CpuMeter().start()
    subprocess.run([sys.executable, "-m", "bench.train", "--worker", str(out), "--iters", str(args.iters),
                    "--warmup", str(args.warmup), "--threads", str(args.threads),
                    "--channels-last" if args.channels_last else "--no-channels-last"],
                   check=True, cwd=REPO)
    figures = json.loads(out.read_text())
    figures["other_load"] = meter.stop()["other_load"]
    return figures


# ---- The peer, in its own venv. ----------------------------------------------------------------

def ensure_peer_venv(venv: Path, say) -> Path:
    """The peer venv's python, building the venv as the peer README says when it is missing."""
    python = venv / "bin" / "python"
    # Only look the package up: importing it needs the stubs time_peer.py installs.
    probe = [str(python), "-c", "import importlib.metadata as m, kornia; m.version('stylegan2_pytorch')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    say(f"building the peer venv in {venv} (about a minute)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for packages in PEER_PACKAGES:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    subprocess.run(probe, check=True)
    return python


def time_peer(python: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / "peer.json"
    meter = CpuMeter().start()
    subprocess.run([str(python), str(PEER_DIR / "time_peer.py"), "--network-capacity", str(PEER_CAPACITY),
                    "--image-size", str(RESOLUTION), "--batch", str(BATCH), "--iters", str(args.iters),
                    "--warmup", str(args.warmup), "--phase", "steady", "--threads", str(args.threads),
                    "--json", str(out)], check=True, capture_output=True, cwd=work)
    raw = json.loads(out.read_text())
    timing = raw["timing"]
    return {
        "img_per_s": timing["img_per_s"], "sec_per_kimg": timing["sec_per_kimg"],
        "median_step_s": timing["median_iter_s"], "cpu_over_wall": timing["cpu_over_wall"],
        "cpu_sec_per_kimg": timing["cpu_sec_per_kimg"],
        "peak_rss_mib": raw["memory"]["peak_rss_MiB"],
        "params": {"G": raw["params"]["generator_total_S_plus_G"], "D": raw["params"]["discriminator_D"]},
        "widths": {"G": raw["config"]["G_widths_by_res"], "D": raw["config"]["D_widths_by_res"]},
        "other_load": meter.stop()["other_load"],
    }


# ---- Report. -----------------------------------------------------------------------------------

def summarise(ours: list[dict[str, Any]], peer: list[dict[str, Any]], channels_last: bool) -> dict[str, Any]:
    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    figures: dict[str, Any] = {
        "config": {"resolution": RESOLUTION, "batch": BATCH, "network": PEER_NETWORK,
                   "channels_last": channels_last},
        "ours": {"img_per_s": median(ours, "img_per_s"), "sec_per_kimg": median(ours, "sec_per_kimg"),
                 "cpu_sec_per_kimg": median(ours, "cpu_sec_per_kimg"),
                 "peak_rss_mib": max(r["peak_rss_mib"] for r in ours), "params": ours[0]["params"],
                 "runs": ours},
        "cpu_model": cpu_model(), "cpus": os.cpu_count(),
    }
    if peer:
        figures["peer"] = {"img_per_s": median(peer, "img_per_s"), "sec_per_kimg": median(peer, "sec_per_kimg"),
                           "cpu_sec_per_kimg": median(peer, "cpu_sec_per_kimg"),
                           "peak_rss_mib": max(r["peak_rss_mib"] for r in peer), "params": peer[0]["params"],
                           "runs": peer}
        rates = compare([p["img_per_s"] for p in peer], [o["img_per_s"] for o in ours])
        figures["ratio_img_per_s"] = rates["ratio_of_medians"]
        figures["ratio_per_round"] = rates["per_round"]
        # CPU seconds per image move much less with other people's load than wall time does.
        figures["cpu_ratio"] = figures["peer"]["cpu_sec_per_kimg"] / figures["ours"]["cpu_sec_per_kimg"]
        figures["rss_ratio"] = figures["ours"]["peak_rss_mib"] / figures["peer"]["peak_rss_mib"]
        loads = [r["other_load"] for r in ours + peer if r.get("other_load") is not None]
        figures["max_other_load"] = max(loads) if loads else None
    return figures


def print_table(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "ours", "peer", title="StyleGAN2 training on CPU, 64x64, batch 8 (medians)")
    ours, peer = figures["ours"], figures.get("peer")

    def cell(side: dict[str, Any] | None, text) -> str:
        return "-" if side is None else text(side)

    table.add_row("img/s", f"{ours['img_per_s']:.2f}", cell(peer, lambda p: f"{p['img_per_s']:.2f}"))
    table.add_row("s/kimg", f"{ours['sec_per_kimg']:.1f}", cell(peer, lambda p: f"{p['sec_per_kimg']:.1f}"))
    table.add_row("CPU s/kimg", f"{ours['cpu_sec_per_kimg']:.1f}",
                  cell(peer, lambda p: f"{p['cpu_sec_per_kimg']:.1f}"))
    table.add_row("peak RSS", f"{ours['peak_rss_mib']:.0f} MiB", cell(peer, lambda p: f"{p['peak_rss_mib']:.0f} MiB"))
    table.add_row("G params", f"{ours['params']['G']:,}", cell(peer, lambda p: f"{p['params']['G']:,}"))
    table.add_row("D params", f"{ours['params']['D']:,}", cell(peer, lambda p: f"{p['params']['D']:,}"))
    Console().print(table)
    if peer:
        speed = verdict(figures["ratio_img_per_s"] >= RATIO_TARGET)
        rss = verdict(figures["rss_ratio"] <= 1)
        per_round = ", ".join(f"{r:.2f}" for r in figures["ratio_per_round"])
        print(f"img/s ratio ours/peer: {figures['ratio_img_per_s']:.2f} (rounds: {per_round}); "
              f"target >= {RATIO_TARGET}: {speed}")
        print(f"CPU time per image, peer/ours: {figures['cpu_ratio']:.2f} (less sensitive to other load)")
        print(f"peak RSS ours/peer: {figures['rss_ratio']:.2f}; target <= 1: {rss}")
        load = figures["max_other_load"]
        if load is not None and load > QUIET_LOAD:
            print(f"note: other processes used up to {100 * load:.0f} % of the machine during a timed run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=32, help="timed steps per run (32: two R1 steps)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps before timing")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and the peer")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads on both sides")
    parser.add_argument("--peer-venv", type=Path, default=REPO / ".venv-sgpeer",
                        help="venv for the peer (created when missing; never the project venv)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="our convolutions in channels_last memory format (speed only, same maths)")
    parser.add_argument("--no-peer", action="store_true", help="time ours only")
    parser.add_argument("--wait-quiet", type=float, default=60.0,
                        help="wait up to this many seconds for a quiet machine before each run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        run_ours_worker(args.iters, args.warmup, args.threads, args.channels_last, args.worker)
        return

    python = None if args.no_peer else ensure_peer_venv(args.peer_venv, print)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        def side(name: str, run: Callable[[], dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
            def timed_round(round_index: int) -> dict[str, Any]:
                figures = run()
                print(f"round {round_index + 1}: {name} {figures['img_per_s']:.2f} img/s", flush=True)
                return figures

            return timed_round

        sides = [side("ours", lambda: time_ours(args, Path(tmp)))]
        if python is not None:
            sides.append(side("peer", lambda: time_peer(python, args, Path(tmp))))
        ours, *others = alternate(range(args.rounds), sides, before=lambda: wait_for_quiet(args.wait_quiet, print))
        peer = others[0] if others else []
    figures = summarise(ours, peer, args.channels_last)
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
