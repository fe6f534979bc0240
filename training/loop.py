"""The StyleGAN2-ADA training loop: `train(config)` in labelled sections, and `TrainConfig`.

Facts from Karras et al. 2019 (StyleGAN2) and 2020 (ADA): Adam with lr 0.0025 and betas
(0, 0.99), corrected for lazy regularisation (with c = interval / (interval + 1): lr * c and
betas ** c); an exponential moving average of G whose half-life is `ema_kimg` thousand images
(default batch * 10 / 32), ramped up over the first images (half-life at most 5 % of the images
seen); ADA's overfitting heuristic r_t = E[sign(D(real))] accumulated over `ada_interval` steps,
moving p by sign(r_t - target) * batch * ada_interval / (ada_kimg * 1000).

How a step runs. One step trains on `batch` images. The phases are data (`PHASES`): Dmain,
Dreg (R1, every r1_interval steps), Gmain, Greg (path length, every pl_interval steps); each
has its own optimiser step, with gradients summed over the rounds of the step. A process's
share of the batch (batch // world_size) is split into rounds of `batch_gpu` images. Every
round of every phase draws its randomness (latents, style mixing, noise, augmentation) from its
own generator seeded by (seed, step, phase, global round index), and global round g always
holds the batch's images g, g + R, g + 2R, ... (R rounds in all). So a step computes the same
thing on one process or on several, whatever the split, and a resumed run replays exactly what
an uninterrupted one would have done: nothing depends on the history of a random stream.

Several processes (torchrun). When WORLD_SIZE > 1 the loop joins the process group (NCCL on
CUDA, gloo on CPU), shards the data with DistributedSampler and all-reduces the gradients
itself after each phase, as one flat buffer, instead of wrapping the networks in
DistributedDataParallel: the phases call G and D several times per backward (D on reals and
fakes), take double-backward gradients for R1 and path length, freeze one network per phase
and leave some phases out on most steps, all of which DDP's bucketed hooks handle only with
workarounds (no_sync, static_graph, find_unused_parameters). A manual all-reduce after each
phase is the same average with none of those constraints. The mean w (for truncation), the
path-length target and the ADA statistic are updated once per step from all-reduced sums, so
every process keeps identical weights and buffers. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from likeness.errors import ConfigError, InvalidInput
from training.augment import AugmentPipe
from training.checkpoint import (
    find_latest_snapshot,
    load_snapshot,
    save_snapshot,
    snapshot_name,
    write_atomic,
)
from training.dataset import ImageFolderDataset
from training.generator import Generator
from training.loss import LossConfig, StyleGAN2Loss
from training.networks import Discriminator, NetworkConfig, build_networks, preset

__all__ = ["AUGMENT_MODES", "Progress", "TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)

AUGMENT_MODES = ("ada", "fixed", "off")
ADA_P_MAX = 1.0 - 2.0 ** -24    # the largest float32 below 1: p stays in [0, 1)
MIXED_PRECISION = {"num_fp16_res": 4, "conv_clamp": 256.0}  # ADA's CUDA setting
# NetworkConfig fields that change speed or numerics but not the shapes of the weights.
_SPEED_FIELDS = frozenset({"num_fp16_res", "conv_clamp", "channels_last", "fused_modconv"})


# ---- Configuration. ---------------------------------------------------------------------------

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
    batch: int = 32                     # images per step, over all processes
    batch_gpu: int | None = None        # images per round in one process (None: batch // world size)
    total_kimg: float = 25000.0         # stop after this many thousand images
    kimg_per_tick: float = 4.0          # progress report interval (thousand images)
    snapshot_kimg: float = 200.0        # snapshot interval (thousand images); also at the end
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

    @property
    def resolved_ema_kimg(self) -> float:
        return self.batch * 10 / 32 if self.ema_kimg is None else self.ema_kimg

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown settings {unknown}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report, sent to `progress_fn` at every tick and at the end of the run."""

    kimg: float                         # thousand images shown so far
    total_kimg: float                   # the run's length
    tick: int                           # ticks completed, this one included
    sec_per_kimg: float                 # training seconds per thousand images over the tick
    img_per_s: float                    # images per second over the tick (all processes)
    losses: dict[str, float]            # mean loss per phase over the tick: D, D_r1, G, G_pl
    augment_p: float                    # current augmentation probability
    done: bool                          # True for the last report of this call
    snapshot: str | None = None         # snapshot written at this report, if any


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


@dataclasses.dataclass(frozen=True)
class _Phase:
    name: str                           # report key
    net: str                            # "G" or "D": the network this phase trains
    interval: int                       # runs on steps divisible by this
    gain: float                         # loss multiplier (the interval, for lazy regularisers)
    seed_id: int                        # fixed per phase, part of every round's seed


# ---- Distributed helpers: no-ops in a single process. -----------------------------------------

@dataclasses.dataclass(frozen=True)
class _Processes:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool                    # this call initialised the process group


def _join_processes(setting: str) -> _Processes:
    """Read torchrun's environment; join the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = setting.startswith("cuda") or (setting == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"TrainConfig.device is {setting!r} but CUDA is not available",
                          hint="use device='cpu' or 'auto'")
    if world <= 1:
        device = torch.device(("cuda" if cuda else "cpu") if setting == "auto" else setting)
        return _Processes(0, 1, device, False)
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    return _Processes(dist.get_rank(), dist.get_world_size(), device, owns)


def _sum_across(tensor: torch.Tensor, procs: _Processes) -> torch.Tensor:
    if procs.world_size > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def _finish_grads(module: torch.nn.Module, procs: _Processes) -> None:
    """Sum gradients over processes (one flat all-reduce) and replace NaN/inf."""
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    if procs.world_size > 1:
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p.grad))
    for p in params:
        torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


def _broadcast_state(module: torch.nn.Module, procs: _Processes) -> None:
    """Start every process from rank 0's weights and buffers."""
    if procs.world_size > 1:
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            dist.broadcast(tensor.data, src=0)


# ---- Data: an endless, resumable stream of this process's share of shuffled epochs. -----------

class _EndlessShard(Sampler[int]):
    """Epoch after epoch of DistributedSampler's shard, starting `start` samples in.

    Rank r's k-th sample is the global stream's sample k * world_size + r (when the dataset
    size is a multiple of world_size), so the batch does not depend on how many processes share
    it, and resuming at a sample count needs no state beyond that count.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, *, procs: _Processes, seed: int, start: int) -> None:
        self.shard = DistributedSampler(dataset, num_replicas=procs.world_size, rank=procs.rank,
                                        shuffle=True, seed=seed, drop_last=False)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        epoch, skip = divmod(self.start, len(self.shard))
        while True:
            self.shard.set_epoch(epoch)
            yield from itertools.islice(iter(self.shard), skip, None)
            epoch, skip = epoch + 1, 0


# ---- Small pieces of a step. ------------------------------------------------------------------

def _round_generator(seed: int, step: int, phase: _Phase, round_index: int, device: torch.device
                     ) -> torch.Generator:
    """The generator of one round of one phase of one step (see the module docstring)."""
    state = np.random.SeedSequence([seed, step, phase.seed_id, round_index]).generate_state(1, np.uint64)[0]
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state))
    return generator


def _make_adam(params: Iterator[torch.nn.Parameter], lr: float, betas: tuple[float, float], eps: float,
               reg_interval: int | None) -> torch.optim.Adam:
    """Adam, corrected for a lazy regulariser that takes an extra step every `reg_interval`.

    The fused implementation (CPU and CUDA) updates all tensors in one kernel per step, about
    twice as fast on CPU as the per-tensor loop.
    """
    c = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=eps, fused=True)


@torch.no_grad()
def _update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def _resolve_network(config: TrainConfig, dataset: ImageFolderDataset, device: torch.device) -> NetworkConfig:
    """The NetworkConfig for this dataset, checked against it; mixed precision applied on CUDA."""
    c_dim = dataset.label_dim if config.use_labels else 0
    if config.network is None:
        try:
            net = preset(dataset.resolution, c_dim=c_dim, img_channels=dataset.num_channels,
                         **config.network_overrides)
        except ValueError as exc:
            raise ConfigError(f"TrainConfig.network_overrides / dataset resolution: {exc}",
                              hint="give TrainConfig.network explicitly for other resolutions") from exc
    else:
        net = config.network
        for name, want, what in (("resolution", dataset.resolution, "the dataset's resolution"),
                                 ("img_channels", dataset.num_channels, "the dataset's channels"),
                                 ("c_dim", c_dim, "the dataset's label size (0 without labels)")):
            if getattr(net, name) != want:
                raise ConfigError(f"TrainConfig.network.{name} is {getattr(net, name)} but {what} "
                                  f"in {config.data} is {want}")
    if config.mixed_precision and device.type == "cuda" and net.num_fp16_res == 0:
        net = dataclasses.replace(net, num_fp16_res=MIXED_PRECISION["num_fp16_res"],
                                  conv_clamp=net.conv_clamp or MIXED_PRECISION["conv_clamp"])
    return net


def _check_resumable(path: Path, state: dict[str, Any], net: NetworkConfig, config: TrainConfig) -> None:
    """The snapshot's weights must fit this network; other changed settings are only logged."""
    saved = state["network_config"]
    current = net.to_dict()
    shape_changes = sorted(k for k in current if k not in _SPEED_FIELDS and saved.get(k) != current[k])
    if shape_changes:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in shape_changes)
        raise ConfigError(f"cannot resume from {path}: the network differs ({diffs})",
                          hint="train with the snapshot's network settings, or use a new out_dir")
    old = state["train_config"]
    changed = sorted(k for k, v in config.to_dict().items()
                     if k not in ("total_kimg", "out_dir") and old.get(k) != v)
    if changed:
        log.warning("resuming from %s with changed settings: %s", path, ", ".join(changed))


def _save_grid(G_ema: Generator, z: torch.Tensor, c: torch.Tensor | None, chunk: int, path: Path) -> None:
    """A PNG grid of G_ema's samples for fixed latents, constant noise, no truncation."""
    with torch.no_grad():
        images = torch.cat([G_ema(zc, None if c is None else c[i: i + chunk], noise_mode="const")
                            for i, zc in zip(range(0, len(z), chunk), z.split(chunk))])
    pixels = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()
    n, ch, h, w = pixels.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.zeros(ch, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, r * h:(r + 1) * h, col * w:(col + 1) * w] = pixels[i]
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if ch == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, lambda handle: handle.write(buffer.getvalue()))


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# ---- The loop. --------------------------------------------------------------------------------

def train(
    config: TrainConfig,
    *,
    resume: str | Path | None = "auto",  # "auto": latest snapshot in out_dir, if any; a path; None: fresh
    progress_fn: Callable[[Progress], None] | None = None,  # called on rank 0 at every tick
    abort_fn: Callable[[], bool] | None = None,  # polled every step; True stops after a final snapshot
) -> TrainResult:
    """Train (or continue training) G and D as `config` says; returns where it stopped.

    Writes to `config.out_dir` (rank 0 only): training_options.json, a snapshot
    network-snapshot-{kimg:06d}.pt, a sample grid fakes{kimg:06d}.png and a metrics.jsonl line
    every `snapshot_kimg` and at the end. Resuming restores everything a step depends on, so an
    interrupted and resumed run ends with the same weights as an uninterrupted one.
    """
    with contextlib.ExitStack() as cleanup:
        # -- Initialize. --
        procs = _join_processes(config.device)
        if procs.owns_group:
            cleanup.callback(dist.destroy_process_group)
        device, is_main = procs.device, procs.rank == 0
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if config.batch % procs.world_size:
            raise ConfigError(f"TrainConfig.batch {config.batch} is not divisible by the "
                              f"{procs.world_size} processes")
        local_batch = config.batch // procs.world_size
        batch_gpu = config.batch_gpu or local_batch
        if local_batch % batch_gpu:
            raise ConfigError(f"TrainConfig.batch_gpu {batch_gpu} does not divide the per-process "
                              f"batch {local_batch} (batch {config.batch} / {procs.world_size} processes)")
        rounds = local_batch // batch_gpu
        total_rounds = rounds * procs.world_size
        out_dir = Path(config.out_dir)
        if is_main:
            out_dir.mkdir(parents=True, exist_ok=True)

        # -- Load dataset. --
        dataset = ImageFolderDataset(config.data, use_labels=config.use_labels, max_size=config.max_size,
                                     xflip=config.xflip)
        net_cfg = _resolve_network(config, dataset, device)
        labels = (torch.stack([dataset.get_label(i) for i in range(len(dataset))]).to(device)
                  if net_cfg.c_dim > 0 else None)

        # -- Construct networks, loss and optimisers. --
        torch.manual_seed(config.seed)
        G, D = build_networks(net_cfg)
        G, D = G.to(device).train(), D.to(device).train()
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        augment_pipe = None
        if config.augment != "off":
            augment_pipe = AugmentPipe().to(device)
            augment_pipe.p.copy_(torch.as_tensor(config.augment_p))
        r1_gamma = config.loss.resolved_r1_gamma(net_cfg.resolution, config.batch)
        loss = StyleGAN2Loss(G, D, config=config.loss, r1_gamma=r1_gamma, augment_pipe=augment_pipe)
        lazy_r1 = config.loss.r1_interval if r1_gamma > 0 else None
        lazy_pl = config.loss.pl_interval if config.loss.pl_weight > 0 else None
        g_opt = _make_adam(G.parameters(), config.g_lr, config.betas, config.eps, lazy_pl)
        d_opt = _make_adam(D.parameters(), config.d_lr, config.betas, config.eps, lazy_r1)
        phases = [_Phase("D", "D", 1, 1.0, 0), _Phase("G", "G", 1, 1.0, 2)]
        if lazy_r1:
            phases.insert(1, _Phase("D_r1", "D", lazy_r1, float(lazy_r1), 1))
        if lazy_pl:
            phases.append(_Phase("G_pl", "G", lazy_pl, float(lazy_pl), 3))
        nets = {"G": (G, g_opt), "D": (D, d_opt)}

        # -- Resume. --
        cur_nimg = step = tick = 0
        seconds = 0.0
        ada_stats = torch.zeros(2, device=device)      # sum of sign(D(real)), count; this interval
        resume_path = find_latest_snapshot(out_dir) if resume == "auto" else resume
        if resume_path is not None:
            state = load_snapshot(Path(resume_path), map_location=device)
            _check_resumable(Path(resume_path), state, net_cfg, config)
            try:
                for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema")):
                    module.load_state_dict(state[key])
                g_opt.load_state_dict(state["G_opt"])
                d_opt.load_state_dict(state["D_opt"])
                loss.load_state_dict(state["loss"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise InvalidInput(f"{resume_path}: snapshot does not fit the networks ({exc})") from exc
            cur_nimg, step, tick = int(state["cur_nimg"]), int(state["step"]), int(state["tick"])
            seconds = float(state["seconds"])
            if augment_pipe is not None:
                p = state["augment_p"] if config.augment == "ada" else config.augment_p
                augment_pipe.p.copy_(torch.as_tensor(p))
            if is_main:    # the saved sums are over all processes: rank 0 carries them
                ada_stats.copy_(torch.as_tensor(state["ada_stats"]))
            torch.set_rng_state(state["rng"]["torch"].cpu())
            if torch.cuda.is_available() and state["rng"]["cuda"]:
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
            log.info("resumed from %s at kimg %.3f", resume_path, cur_nimg / 1000)
        for module in (G, D, G_ema):
            _broadcast_state(module, procs)
        G.requires_grad_(False)
        D.requires_grad_(False)

        # -- Prepare outputs. --
        grid_z = torch.stack([torch.randn(net_cfg.z_dim, generator=torch.Generator().manual_seed(s))
                              for s in range(config.grid_samples)]).to(device)
        grid_c = labels[torch.arange(config.grid_samples) % len(dataset)] if labels is not None else None
        if is_main:
            options = {"train_config": config.to_dict(), "network_config": net_cfg.to_dict(),
                       "r1_gamma": r1_gamma, "world_size": procs.world_size, "batch_gpu": batch_gpu,
                       "dataset_fingerprint": dataset.fingerprint(), "dataset_size": len(dataset),
                       "resumed_from": None if resume_path is None else str(resume_path)}
            write_atomic(out_dir / "training_options.json",
                         lambda handle: handle.write(json.dumps(options, indent=2).encode()))
            log.info("training %s on %s (%d images, %d process(es), batch %d in rounds of %d)",
                     out_dir, config.data, len(dataset), procs.world_size, config.batch, batch_gpu)

        sampler = _EndlessShard(dataset, procs=procs, seed=config.seed, start=cur_nimg // procs.world_size)
        loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=config.workers,
                            pin_memory=device.type == "cuda", drop_last=True)
        batches = iter(loader)

        # -- Train. --
        total_nimg = round(config.total_kimg * 1000)
        tick_nimg = max(1, round(config.kimg_per_tick * 1000))
        snap_nimg = max(1, round(config.snapshot_kimg * 1000))
        tick_start_nimg, tick_seconds, mark = cur_nimg, 0.0, time.perf_counter()
        tick_sums: dict[str, torch.Tensor] = {}
        last_snapshot: Path | None = None
        done = cur_nimg >= total_nimg
        while not done:
            images, real_labels = next(batches)
            real = images.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1
            real_c = real_labels.to(device, non_blocking=True)
            w_sum = pl_sum = None
            for phase in phases:
                if step % phase.interval:
                    continue
                net, opt = nets[phase.net]
                net.requires_grad_(True)
                opt.zero_grad(set_to_none=True)
                loss_sum = torch.zeros([], device=device)
                for j in range(rounds):
                    generator = _round_generator(config.seed, step, phase, procs.rank + procs.world_size * j,
                                                 device)
                    r_img, r_c = real[j::rounds], real_c[j::rounds]
                    n = len(r_img) if phase.name != "G_pl" else max(1, len(r_img) // config.loss.pl_batch_shrink)
                    z = torch.randn([n, net_cfg.z_dim], generator=generator, device=device)
                    gen_c = (labels[torch.randint(len(labels), (n,), generator=generator, device=device)]
                             if labels is not None else None)
                    if phase.name == "D":
                        value, real_logits = loss.d_main(r_img, r_c, z, gen_c, generator=generator)
                        ada_stats += torch.stack([real_logits.sign().sum(), torch.tensor(float(n), device=device)])
                    elif phase.name == "D_r1":
                        value, _ = loss.d_r1(r_img, r_c, generator=generator)
                    elif phase.name == "G":
                        value, w = loss.g_main(z, gen_c, generator=generator)
                        w_sum = w.sum(dim=0) if w_sum is None else w_sum + w.sum(dim=0)
                    else:
                        value, lengths = loss.g_path_length(z, gen_c, generator=generator)
                        pl_sum = lengths.sum() if pl_sum is None else pl_sum + lengths.sum()
                    value.mul(phase.gain / total_rounds).backward()
                    loss_sum += value.detach()
                _finish_grads(net, procs)
                opt.step()
                net.requires_grad_(False)
                sums = tick_sums.setdefault(phase.name, torch.zeros(2, device=device))
                sums += torch.stack([loss_sum, torch.tensor(float(rounds), device=device)])

            # Per-step state from whole-batch means: mean w (truncation), path-length target.
            if w_sum is not None:
                G.mapping.track_w_avg((_sum_across(w_sum, procs) / config.batch)[None])
            if pl_sum is not None:
                pl_n = max(1, batch_gpu // config.loss.pl_batch_shrink) * total_rounds
                loss.update_pl_mean(_sum_across(pl_sum, procs) / pl_n)

            # G_ema: half-life ema_kimg, ramped up over the first images.
            ema_nimg = config.resolved_ema_kimg * 1000
            if config.ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * config.ema_rampup)
            _update_ema(G_ema, G, 0.5 ** (config.batch / max(ema_nimg, 1e-8)))
            cur_nimg += config.batch
            step += 1

            # ADA: move p towards E[sign(D(real))] == ada_target.
            if augment_pipe is not None and config.augment == "ada" and step % config.ada_interval == 0:
                total = _sum_across(ada_stats, procs)
                r_t = float(total[0] / total[1].clamp(min=1))
                adjust = np.sign(r_t - config.ada_target) * config.batch * config.ada_interval / (config.ada_kimg * 1000)
                augment_pipe.p.copy_(torch.as_tensor(min(max(float(augment_pipe.p) + adjust, 0.0), ADA_P_MAX)))
                ada_stats.zero_()

            aborted = abort_fn is not None and is_main and bool(abort_fn())
            if procs.world_size > 1:
                aborted = bool(_sum_across(torch.tensor(float(aborted), device=device), procs) > 0)
            done = cur_nimg >= total_nimg or aborted
            tick_due = done or cur_nimg >= tick_start_nimg + tick_nimg
            snapshot_due = done or cur_nimg // snap_nimg > (cur_nimg - config.batch) // snap_nimg
            if not (tick_due or snapshot_due):
                continue

            # -- Report and snapshot (timings exclude this part). --
            elapsed, mark = time.perf_counter() - mark, time.perf_counter()
            tick_seconds += elapsed
            seconds += elapsed
            tick += int(tick_due)
            losses = {name: float(s[0] / s[1]) for name, s in
                      ((name, _sum_across(v, procs)) for name, v in tick_sums.items()) if s[1] > 0}
            augment_p = float(augment_pipe.p) if augment_pipe is not None else 0.0
            snapshot_path = None
            if snapshot_due:
                ada_total = _sum_across(ada_stats, procs)
                if is_main:
                    snapshot_path = out_dir / snapshot_name(cur_nimg)
                    save_snapshot(snapshot_path, {
                        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                        "G_opt": g_opt.state_dict(), "D_opt": d_opt.state_dict(), "loss": loss.state_dict(),
                        "augment_p": augment_p, "ada_stats": ada_total.tolist(),
                        "cur_nimg": cur_nimg, "step": step, "tick": tick,
                        "data_position": cur_nimg, "seconds": seconds,
                        "rng": {"torch": torch.get_rng_state(),
                                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                        "train_config": config.to_dict(), "network_config": net_cfg.to_dict(),
                    })
                    _save_grid(G_ema, grid_z, grid_c, batch_gpu, out_dir / f"fakes{cur_nimg // 1000:06d}.png")
                    _append_line(out_dir / "metrics.jsonl", {
                        "kimg": cur_nimg / 1000, "step": step, "losses": losses, "augment_p": augment_p,
                        "pl_mean": float(loss.pl_mean), "seconds": round(seconds, 3),
                        "snapshot": snapshot_path.name, "timestamp": time.time()})
                    last_snapshot = snapshot_path
            if tick_due:
                kimg_done = (cur_nimg - tick_start_nimg) / 1000
                progress = Progress(
                    kimg=cur_nimg / 1000, total_kimg=config.total_kimg, tick=tick,
                    sec_per_kimg=tick_seconds / kimg_done, img_per_s=kimg_done * 1000 / max(tick_seconds, 1e-9),
                    losses=losses, augment_p=augment_p, done=done,
                    snapshot=None if snapshot_path is None else str(snapshot_path))
                if is_main:
                    log.info("tick %d  kimg %.3f/%g  %.1f s/kimg  %.2f img/s  p %.3f  %s", tick, progress.kimg,
                             config.total_kimg, progress.sec_per_kimg, progress.img_per_s, augment_p,
                             "  ".join(f"{k} {v:.4f}" for k, v in losses.items()))
                    if progress_fn is not None:
                        progress_fn(progress)
                tick_sums.clear()
                tick_start_nimg, tick_seconds = cur_nimg, 0.0
            mark = time.perf_counter()

        # -- Done. --
        del batches
        return TrainResult(run_dir=out_dir, cur_nimg=cur_nimg,
                           augment_p=float(augment_pipe.p) if augment_pipe is not None else 0.0,
                           snapshot=last_snapshot, network=net_cfg, G=G, D=D, G_ema=G_ema)
