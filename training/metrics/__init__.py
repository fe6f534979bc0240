"""Named metrics of a generator, computed by the training loop at every snapshot.

A metric is a function registered under a name with `@register("name")`. It takes G_ema and a
`MetricContext` (the dataset, the device, the processes, the run) and returns named numbers,
e.g. {"fid50k_full": 4.1}. A run lists the metrics it wants in `TrainConfig.metrics`; the loop
checks the names before the first step and calls `compute` after writing each snapshot. The
values go into that snapshot's metrics.jsonl line (and so into its Checkpoint row), the
progress report and the result. FID and KID (`fid_kid`, `fid_kid_randconv`) are registered by
`training.metrics.fid_kid.register_metrics()`; importing that module registers nothing.

Every process calls `compute` at the same point, so a metric may split its work across the
processes (`context.procs`) and sum the parts; all processes must return the same values, and
rank 0's are recorded. Metrics run with gradients off and on a forked RNG, so they never change
what the training that follows computes (exact resume holds whatever metrics a run has).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import torch

from likeness.errors import ConfigError
from training.dataset import ImageFolderDataset
from training.distributed import Processes
from training.generator import Generator
from training.networks import NetworkConfig

__all__ = ["Metric", "MetricContext", "check", "compute", "get", "names", "register", "unregister"]


@dataclasses.dataclass(frozen=True)
class MetricContext:
    """What a metric may use besides G_ema."""

    dataset: ImageFolderDataset         # the images the run trains on
    network: NetworkConfig              # G_ema's configuration (z_dim, c_dim, resolution ...)
    device: torch.device                # where G_ema lives
    procs: Processes                    # this process's rank and the collectives
    run_dir: Path                       # the run folder (a metric may cache statistics there)
    cur_nimg: int                       # images shown when the snapshot was taken
    batch_gpu: int                      # images per forward pass the run uses on one process


class Metric(Protocol):
    def __call__(self, G_ema: Generator, context: MetricContext) -> Mapping[str, float]: ...


_REGISTRY: dict[str, Metric] = {}


def register(name: str) -> Callable[[Metric], Metric]:
    """Decorator: make `metric` available to TrainConfig.metrics under `name`."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a metric needs a non-empty name, got {name!r}")

    def add(metric: Metric) -> Metric:
        if name in _REGISTRY and _REGISTRY[name] is not metric:
            raise ValueError(f"a metric named {name!r} is registered already")
        _REGISTRY[name] = metric
        return metric

    return add


def unregister(name: str) -> None:
    """Remove a metric (a no-op for an unknown name)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered names, sorted."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Metric:
    check([name])
    return _REGISTRY[name]


def check(wanted: Iterable[str]) -> None:
    """ConfigError naming every unknown metric in `wanted`."""
    unknown = [n for n in wanted if n not in _REGISTRY]
    if unknown:
        known = ", ".join(names()) or "none registered"
        raise ConfigError(f"TrainConfig.metrics: unknown metrics {unknown} (known: {known})",
                          hint="import the module that registers them, or leave them out")


def compute(wanted: Iterable[str], G_ema: Generator, context: MetricContext) -> dict[str, float]:
    """The values of the metrics in `wanted`, merged into one dict, in the order asked."""
    wanted = list(wanted)
    check(wanted)
    values: dict[str, float] = {}
    if not wanted:
        return values
    fork = [context.device] if context.device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), torch.no_grad():
        for name in wanted:
            for key, value in _REGISTRY[name](G_ema, context).items():
                if key in values:
                    raise ConfigError(f"metric {name!r} reports {key!r}, which another metric of the run reports too")
                values[key] = float(value)
    return values
