"""What a training run is asked to do (`TrainConfig`) and what it reports back.

`RUN_DEFAULTS` holds the few settings a person chooses when starting a run (length, batch,
snapshot interval, tick interval); the `likeness train run` options, the Training page's form,
`training.api` and `TrainConfig` itself all take their defaults from it, so they cannot drift.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from likeness.errors import ConfigError
from training.discriminator import Discriminator
from training.generator import Generator
from training.loss import LossConfig
from training.networks import NetworkConfig

__all__ = ["AUGMENT_MODES", "RUN_DEFAULTS", "RunDefaults", "TrainConfig", "TrainProgress", "TrainResult"]

AUGMENT_MODES = ("ada", "fixed", "off")


@dataclasses.dataclass(frozen=True)
class RunDefaults:
    """The defaults of the settings a run is started with (CLI, Training page, api)."""

    kimg: float = 25000.0               # length: thousand images shown in all
    batch: int = 32                     # images per step, over all processes
    snapshot_kimg: float = 200.0        # snapshot (checkpoint) interval, thousand images
    tick_kimg: float = 4.0              # progress report interval, thousand images


RUN_DEFAULTS = RunDefaults()


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs, JSON round-trippable (`to_dict` / `from_dict`)."""

    data: str                           # dataset folder or .zip (training/dataset.py format)
    out_dir: str                        # run folder: snapshots, sample grids, metrics.jsonl
    network: NetworkConfig | None = None  # None: preset(dataset resolution, **network_overrides)
    network_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # preset() overrides
    use_labels: bool = True             # condition on the dataset's labels when it has them
    xflip: bool = False                 # add mirrored copies of the images
    max_size: int | None = None         # use at most this many images (fixed subset)
    batch: int = RUN_DEFAULTS.batch     # images per step, over all processes
    batch_gpu: int | None = None        # images per round in one process (None: batch // world size)
    total_kimg: float = RUN_DEFAULTS.kimg  # stop after this many thousand images
    kimg_per_tick: float = RUN_DEFAULTS.tick_kimg  # progress report interval (thousand images)
    snapshot_kimg: float = RUN_DEFAULTS.snapshot_kimg  # snapshot interval (thousand images); also at the end
    g_lr: float = 0.0025                # G learning rate (before the lazy-regularisation correction)
    d_lr: float = 0.0025                # D learning rate (before the lazy-regularisation correction)
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (before the correction)
    eps: float = 1e-8                   # Adam epsilon
    loss: LossConfig = LossConfig()     # losses and regularisers (R1 gamma and intervals, ...)
    ema_kimg: float | None = None       # G_ema half-life in thousand images (None: batch * 10 / 32)
    ema_rampup: float | None = 0.05     # half-life at most this share of the images seen (None: off)
    augment: str = "ada"                # "ada" (adaptive p), "fixed" (p = augment_p) or "off"
    augment_p: float = 0.0              # initial (ada) or constant (fixed) augmentation probability
    ada_target: float = 0.6             # target of r_t = E[sign(D(real))]
    ada_interval: int = 4               # adjust p every this many steps
    ada_kimg: float = 500.0             # p can move from 0 to 1 in this many thousand images
    seed: int = 0                       # seeds the networks, the data order and every round
    device: str = "auto"                # "auto", "cpu", "cuda" or "cuda:N" (torchrun: cuda:LOCAL_RANK)
    mixed_precision: bool = False       # CUDA: FP16 in the 4 highest resolutions, clamp 256 (ADA)
    workers: int = 1                    # DataLoader worker processes (0: load in this process)
    threads: int | None = None          # torch.set_num_threads for this process (None: leave as is)
    grid_samples: int = 32              # samples in each fakes*.png grid (seeds 0..n-1)
    metrics: tuple[str, ...] = ()       # training.metrics names computed at every snapshot

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"TrainConfig.{name} {rule}, got {getattr(self, name)!r}")

        if isinstance(self.network, Mapping):
            object.__setattr__(self, "network", NetworkConfig.from_dict(dict(self.network)))
        if isinstance(self.loss, Mapping):
            object.__setattr__(self, "loss", LossConfig(**self.loss))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "network_overrides", dict(self.network_overrides))
        if isinstance(self.metrics, str):   # one name, not its letters
            object.__setattr__(self, "metrics", (self.metrics,))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        need(bool(self.data), "data", "must name a dataset folder or zip")
        need(bool(self.out_dir), "out_dir", "must name a run folder")
        for name in ("batch", "ada_interval", "grid_samples"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "must be a positive int")
        need(self.batch_gpu is None or (isinstance(self.batch_gpu, int) and self.batch_gpu >= 1),
             "batch_gpu", "must be None or a positive int")
        need(self.max_size is None or (isinstance(self.max_size, int) and self.max_size >= 1),
             "max_size", "must be None or a positive int")
        for name in ("total_kimg", "kimg_per_tick", "snapshot_kimg", "g_lr", "d_lr", "eps", "ada_kimg"):
            need(getattr(self, name) > 0, name, "must be > 0")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "must be two values in [0, 1)")
        need(self.ema_kimg is None or self.ema_kimg >= 0, "ema_kimg", "must be None or >= 0")
        need(self.ema_rampup is None or self.ema_rampup > 0, "ema_rampup", "must be None or > 0")
        need(self.augment in AUGMENT_MODES, "augment", f"must be one of {AUGMENT_MODES}")
        need(0 <= self.augment_p < 1, "augment_p", "must be in [0, 1)")
        need(0 <= self.ada_target <= 1, "ada_target", "must be in [0, 1]")
        need(isinstance(self.seed, int) and self.seed >= 0, "seed", "must be an int >= 0")
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device",
             "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        need(isinstance(self.workers, int) and self.workers >= 0, "workers", "must be an int >= 0")
        need(self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             "threads", "must be None or a positive int")
        need(all(isinstance(m, str) and m for m in self.metrics) and len(set(self.metrics)) == len(self.metrics),
             "metrics", "must be distinct metric names")

    @property
    def resolved_ema_kimg(self) -> float:
        return self.batch * 10 / 32 if self.ema_kimg is None else self.ema_kimg

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        data["metrics"] = list(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown settings {unknown}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """One progress report, sent to `progress_fn` at every tick and at the end of the run, and to
    `live_fn` between ticks."""

    kimg: float                         # thousand images shown so far
    total_kimg: float                   # the run's length
    tick: int                           # ticks completed, this one included
    sec_per_kimg: float                 # training seconds per thousand images over the tick
    img_per_s: float                    # images per second over the tick (all processes)
    losses: dict[str, float]            # mean loss per phase over the tick: D, D_r1, G, G_pl
    augment_p: float                    # current augmentation probability
    done: bool                          # True for the last report of this call
    snapshot: str | None = None         # snapshot written at this report, if any
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # computed at that snapshot
    live: bool = False                  # a report between ticks (rank 0's own losses so far in the tick)
    eta_s: float | None = None          # seconds left at the current speed


@dataclasses.dataclass
class TrainResult:
    """Where a call to `train` stopped, with the networks as they are then."""

    run_dir: Path
    cur_nimg: int
    augment_p: float
    snapshot: Path | None               # the last snapshot this call wrote (rank 0), if any
    network: NetworkConfig
    G: Generator
    D: Discriminator
    G_ema: Generator
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # at the last snapshot, if any
