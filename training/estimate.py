"""Before a run starts: which device it will train on and about how long it will take.

The estimate is seconds per thousand images times the run's length. The speed comes from the
latest run recorded on this host, on the same device, at the same resolution and batch (its last
progress record, `TrainingRun.last_metrics`), and otherwise from a short benchmark: `train`
itself, for BENCHMARK_STEPS steps of at most BENCHMARK_BATCH images in a temporary folder, timed
after its first step (which pays for allocation and warm-up). Lazy regularisers run on few of
those steps, so a benchmark estimate errs on the short side; the live ETA corrects it once the
run trains.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import time
from typing import Any

import torch

from training.config import TrainConfig, TrainProgress
from training.loop import train

__all__ = ["BENCHMARK_BATCH", "BENCHMARK_STEPS", "Estimate", "benchmark", "describe_device", "estimate",
           "format_duration", "from_history"]

BENCHMARK_STEPS = 3                 # the first is not timed
BENCHMARK_BATCH = 8                 # images per benchmark step, at most (time per image is what counts)


def resolve_device(name: str) -> torch.device:
    """The device `TrainConfig.device` names ("auto": the first CUDA device when there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device(name: str = "auto") -> str:
    """The device in words: "CUDA cuda:0 (NVIDIA H200)" or "CPU (2 threads)"."""
    device = resolve_device(name)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cuda":
        return f"{device} (not available: no CUDA device)"
    threads = int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """How long a run should take where it is about to run."""

    device: str                     # describe_device()
    total_kimg: float               # the run's length (the part still to train, when resuming)
    sec_per_kimg: float
    source: str                     # where the speed comes from, in words

    @property
    def seconds(self) -> float:
        return self.sec_per_kimg * self.total_kimg

    def line(self) -> str:
        return (f"estimated time: {format_duration(self.seconds)} for {self.total_kimg:g} kimg at "
                f"{self.sec_per_kimg:.3g} s/kimg ({self.source})")


def format_duration(seconds: float) -> str:
    """A duration in the two largest units: 45 s, 12 min 5 s, 3 h 20 min, 17 d 4 h."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def from_history(summaries: list[Any], *, device: str, resolution: int | None, batch: int) -> tuple[float, str] | None:
    """(s/kimg, source) of the latest recorded run on this host and device with this resolution
    and batch (`summaries` newest first, as `runs.run_status` returns them), or None."""
    host = socket.gethostname()
    for s in summaries:
        m = s.last_metrics
        net = s.network or {}
        if (m.get("host") == host and m.get("device") == device and float(m.get("sec_per_kimg") or 0) > 0
                and int(s.config.get("batch", -1)) == batch
                and (resolution is None or net.get("resolution") == resolution)):
            return float(m["sec_per_kimg"]), f"the speed of run {s.name} on this machine"
    return None


def benchmark(config: TrainConfig, *, steps: int = BENCHMARK_STEPS) -> float:
    """Seconds per thousand images of `config` on its device, from `steps` training steps of at
    most BENCHMARK_BATCH images (the first not timed), run in a temporary folder."""
    batch = min(config.batch, BENCHMARK_BATCH)
    marks: list[float] = []

    def mark() -> bool:
        marks.append(time.perf_counter())   # polled once at the end of every step
        return False

    with tempfile.TemporaryDirectory(prefix="likeness-benchmark-") as tmp:
        trial = dataclasses.replace(
            config, out_dir=tmp, batch=batch, batch_gpu=None, total_kimg=steps * batch / 1000,
            kimg_per_tick=steps * batch / 1000, snapshot_kimg=steps * batch / 1000, metrics=(), grid_samples=1,
            workers=0)

        def ignore(_report: TrainProgress) -> None:
            return None

        train(trial, resume=None, abort_fn=mark, progress_fn=ignore)
    timed = marks[-1] - marks[0]
    return timed / ((len(marks) - 1) * batch) * 1000


def estimate(config: TrainConfig, summaries: list[Any], *, resolution: int | None = None,
             done_kimg: float = 0.0, measure: bool = True) -> Estimate | None:
    """The estimate for `config` (see the module docstring); None when there is no history and
    `measure` is False."""
    device = describe_device(config.device)
    remaining = max(config.total_kimg - done_kimg, 0.0)
    known = from_history(summaries, device=device, resolution=resolution, batch=config.batch)
    if known is not None:
        return Estimate(device=device, total_kimg=remaining, sec_per_kimg=known[0], source=known[1])
    if not measure:
        return None
    sec_per_kimg = benchmark(config)
    return Estimate(device=device, total_kimg=remaining, sec_per_kimg=sec_per_kimg,
                    source=f"measured: {BENCHMARK_STEPS - 1} benchmark steps of {min(config.batch, BENCHMARK_BATCH)} images")
