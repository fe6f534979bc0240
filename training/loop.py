"""The StyleGAN2-ADA training loop: `train(config)`, one function in labelled sections.

Facts from Karras et al. 2019 (StyleGAN2) and 2020 (ADA): Adam with lr 0.0025 and betas
(0, 0.99), corrected for lazy regularisation (with c = interval / (interval + 1): lr * c and
betas ** c); an exponential moving average of G whose half-life is `ema_kimg` thousand images
(default batch * 10 / 32), ramped up over the first images (half-life at most 5 % of the images
seen); ADA's overfitting heuristic r_t = E[sign(D(real))] accumulated over `ada_interval` steps,
moving p by sign(r_t - target) * batch * ada_interval / (ada_kimg * 1000).

How a step runs. One step trains on `batch` images. The phases are data (`Phase`): Dmain,
Dreg (R1, every r1_interval steps), Gmain, Greg (path length, every pl_interval steps); each
names the network and optimiser it trains and the loss it runs, and has its own optimiser
step, with gradients summed over the rounds of the step. A process's share of the batch
(batch // world_size) is split into rounds of `batch_gpu` images. Every round of every phase
draws its randomness (latents, style mixing, noise, augmentation) from its own generator seeded
by (seed, step, phase, global round index), and global round g always holds the batch's images
g, g + R, g + 2R, ... (R rounds in all). So a step computes the same thing on one process or on
several, whatever the split, and a resumed run replays exactly what an uninterrupted one would
have done: nothing depends on the history of a random stream.

Several processes (torchrun). When WORLD_SIZE > 1 the loop joins the process group (NCCL on
CUDA, gloo on CPU; training/distributed.py), shards the data with DistributedSampler and
all-reduces the gradients itself after each phase, as one flat buffer, instead of wrapping the
networks in DistributedDataParallel: the phases call G and D several times per backward (D on
reals and fakes), take double-backward gradients for R1 and path length, freeze one network per
phase and leave some phases out on most steps, all of which DDP's bucketed hooks handle only
with workarounds (no_sync, static_graph, find_unused_parameters). A manual all-reduce after
each phase is the same average with none of those constraints. The mean w (for truncation), the
path-length target and the ADA statistic are updated once per step from all-reduced sums, so
every process keeps identical weights and buffers. Only rank 0 writes files.

Live reports. Ticks come every `kimg_per_tick` thousand images, which on a slow machine can be
many minutes apart; between them `live_fn` gets a report (kimg, img/s, ETA, the tick's losses
so far on rank 0) at most every `live_every_s` seconds of wall time, so a watcher never waits
for a tick. Live reports run no collective: they read rank 0's own numbers only.

At every snapshot the metrics named in `TrainConfig.metrics` are computed (training.metrics)
and recorded with the snapshot's metrics.jsonl line.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from likeness.errors import ConfigError, InvalidInput
from likeness.files import append_line_durably, write_bytes_atomic, write_text_atomic
from training import metrics
from training.augment import AugmentPipe
from training.checkpoint import (
    METRICS_FILE,
    OPTIONS_FILE,
    compact_adam_state,
    expand_adam_state,
    find_latest_snapshot,
    grid_name,
    load_snapshot,
    save_snapshot,
    snapshot_name,
)
from training.config import TrainConfig, TrainProgress, TrainResult
from training.dataset import ImageFolderDataset
from training.distributed import EndlessShard, join_processes
from training.generator import Generator
from training.loss import StyleGAN2Loss
from training.networks import NetworkConfig, build_networks, preset

__all__ = ["Phase", "train"]

log = logging.getLogger(__name__)

ADA_P_MAX = 1.0 - 2.0 ** -24    # the largest float32 below 1: p stays in [0, 1)
MIXED_PRECISION_FP16_RES, MIXED_PRECISION_CLAMP = 4, 256.0  # ADA's CUDA setting
# NetworkConfig fields that change speed or numerics but not the shapes of the weights.
_SPEED_FIELDS = frozenset({"num_fp16_res", "conv_clamp", "channels_last", "fused_modconv"})


# ---- Phases: what one step trains, as data. ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Round:
    """The inputs of one round of one phase: real images and fresh latents, and its generator."""

    real: torch.Tensor                  # this round's share of the batch, in [-1, 1]
    real_c: torch.Tensor                # their labels (empty rows without labels)
    z: torch.Tensor                     # latents of the fakes (fewer for path length)
    gen_c: torch.Tensor | None          # labels of the fakes, drawn from the dataset's
    generator: torch.Generator          # the round's only source of randomness


@dataclasses.dataclass
class StepSums:
    """What phases add up for the updates that follow the step (all before the all-reduce)."""

    ada: torch.Tensor                   # sum of sign(D(real)), count: over the current ADA interval
    w: torch.Tensor | None = None       # sum of G's mapped w, for the tracked mean w
    pl: torch.Tensor | None = None      # sum of path lengths, for the path-length target


PhaseLoss = Callable[[Round, StepSums], torch.Tensor]   # one round's loss (before gain and scaling)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimiser step of a training step: which network, which loss, how often."""

    name: str                           # report key: D, D_r1, G, G_pl
    module: torch.nn.Module             # the network it trains (the other one stays frozen)
    optimizer: torch.optim.Optimizer    # that network's Adam, lazily corrected (`_make_adam`)
    loss: PhaseLoss                     # what a round computes
    seed_id: int                        # fixed per phase, part of every round's seed
    interval: int = 1                   # runs on steps divisible by this
    gain: float = 1.0                   # loss multiplier (the interval, for lazy regularisers)
    batch_shrink: int = 1               # a round makes (its images // this) fakes, at least 1

    def due(self, step: int) -> bool:
        return step % self.interval == 0


def _d_main(loss: StyleGAN2Loss, r: Round, sums: StepSums) -> torch.Tensor:
    value, real_logits = loss.d_main(r.real, r.real_c, r.z, r.gen_c, generator=r.generator)
    sums.ada += torch.stack([real_logits.sign().sum(), torch.tensor(float(len(r.z)), device=r.z.device)])
    return value


def _d_r1(loss: StyleGAN2Loss, r: Round, sums: StepSums) -> torch.Tensor:
    return loss.d_r1(r.real, r.real_c, generator=r.generator)[0]


def _g_main(loss: StyleGAN2Loss, r: Round, sums: StepSums) -> torch.Tensor:
    value, w = loss.g_main(r.z, r.gen_c, generator=r.generator)
    sums.w = w.sum(dim=0) if sums.w is None else sums.w + w.sum(dim=0)
    return value


def _g_path_length(loss: StyleGAN2Loss, r: Round, sums: StepSums) -> torch.Tensor:
    value, lengths = loss.g_path_length(r.z, r.gen_c, generator=r.generator)
    sums.pl = lengths.sum() if sums.pl is None else sums.pl + lengths.sum()
    return value


def _make_phases(config: TrainConfig, loss: StyleGAN2Loss, *, g_opt: torch.optim.Optimizer,
                 d_opt: torch.optim.Optimizer, lazy_r1: int | None, lazy_pl: int | None) -> list[Phase]:
    """The phases in the order a step runs them; lazy regularisers only when they are on."""
    phases = [Phase("D", loss.D, d_opt, functools.partial(_d_main, loss), seed_id=0)]
    if lazy_r1:
        phases.append(Phase("D_r1", loss.D, d_opt, functools.partial(_d_r1, loss), seed_id=1,
                            interval=lazy_r1, gain=float(lazy_r1)))
    phases.append(Phase("G", loss.G, g_opt, functools.partial(_g_main, loss), seed_id=2))
    if lazy_pl:
        phases.append(Phase("G_pl", loss.G, g_opt, functools.partial(_g_path_length, loss), seed_id=3,
                            interval=lazy_pl, gain=float(lazy_pl), batch_shrink=config.loss.pl_batch_shrink))
    return phases


# ---- Small pieces of a step. ------------------------------------------------------------------

def _round_generator(seed: int, step: int, phase: Phase, round_index: int, device: torch.device
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


def _sanitise_grads(module: torch.nn.Module) -> None:
    """Replace NaN and inf in the gradients (after the all-reduce, so every process agrees)."""
    for p in module.parameters():
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


@torch.no_grad()
def _update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
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
        net = dataclasses.replace(net, num_fp16_res=MIXED_PRECISION_FP16_RES,
                                  conv_clamp=net.conv_clamp or MIXED_PRECISION_CLAMP)
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
    # A setting the snapshot predates counts as its default (TrainConfig grows new fields).
    defaults = TrainConfig(data="-", out_dir="-").to_dict()
    changed = sorted(k for k, v in config.to_dict().items()
                     if k not in ("total_kimg", "out_dir") and old.get(k, defaults.get(k)) != v)
    if changed:
        log.warning("resuming from %s with changed settings: %s", path, ", ".join(changed))


def _save_grid(G_ema: Generator, z: torch.Tensor, c: torch.Tensor | None, chunk: int, path: Path) -> None:
    """A PNG grid of G_ema's samples for fixed latents, constant noise, no truncation."""
    with torch.no_grad():
        images = torch.cat([G_ema(zc, None if c is None else c[i: i + chunk], noise_mode="const")
                            for i, zc in zip(range(0, len(z), chunk), z.split(chunk), strict=True)])
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
    write_bytes_atomic(path, buffer.getvalue())


# ---- The loop. --------------------------------------------------------------------------------

def train(
    config: TrainConfig,
    *,
    resume: str | Path | None = "auto",  # "auto": latest snapshot in out_dir, if any; a path; None: fresh
    progress_fn: Callable[[TrainProgress], None] | None = None,  # called on rank 0 at every tick
    abort_fn: Callable[[], bool] | None = None,  # polled every step; True stops after a final snapshot
    live_fn: Callable[[TrainProgress], None] | None = None,  # rank 0, between ticks (see the module docstring)
    live_every_s: float = 2.0,           # wall-time seconds between live reports, at least
) -> TrainResult:
    """Train (or continue training) G and D as `config` says; returns where it stopped.

    Writes to `config.out_dir` (rank 0 only): training_options.json, a snapshot
    network-snapshot-{kimg:06d}.{rest:03d}.pt (named by image count), a sample grid
    fakes{kimg:06d}.{rest:03d}.png and a metrics.jsonl line
    every `snapshot_kimg` and at the end. Resuming restores everything a step depends on, so an
    interrupted and resumed run ends with the same weights as an uninterrupted one.
    """
    metrics.check(config.metrics)
    with contextlib.ExitStack() as cleanup:
        # -- Initialize: processes, threads, how the batch splits into rounds. --
        procs = join_processes(config.device)
        cleanup.push(lambda exc_type, _exc, _tb: procs.leave(failed=exc_type is not None))
        device, is_main = procs.device, procs.is_main
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

        # -- Construct networks, loss, optimisers and phases. --
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
        phases = _make_phases(config, loss, g_opt=g_opt, d_opt=d_opt, lazy_r1=lazy_r1, lazy_pl=lazy_pl)

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
                g_opt.load_state_dict(expand_adam_state(state["G_opt"]))
                d_opt.load_state_dict(expand_adam_state(state["D_opt"]))
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
            procs.broadcast(module)
        G.requires_grad_(False)
        D.requires_grad_(False)

        # -- Prepare outputs and the data stream. --
        grid_z = torch.stack([torch.randn(net_cfg.z_dim, generator=torch.Generator().manual_seed(s))
                              for s in range(config.grid_samples)]).to(device)
        grid_c = labels[torch.arange(config.grid_samples) % len(dataset)] if labels is not None else None
        if is_main:
            options = {"train_config": config.to_dict(), "network_config": net_cfg.to_dict(),
                       "r1_gamma": r1_gamma, "world_size": procs.world_size, "batch_gpu": batch_gpu,
                       "dataset_fingerprint": dataset.fingerprint(), "dataset_size": len(dataset),
                       "resumed_from": None if resume_path is None else str(resume_path)}
            write_text_atomic(out_dir / OPTIONS_FILE, json.dumps(options, indent=2))
            log.info("training %s on %s (%d images, %d process(es), batch %d in rounds of %d)",
                     out_dir, config.data, len(dataset), procs.world_size, config.batch, batch_gpu)

        sampler = EndlessShard(dataset, procs=procs, seed=config.seed, start=cur_nimg // procs.world_size)
        loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=config.workers,
                            pin_memory=device.type == "cuda", drop_last=True)
        batches = iter(loader)

        total_nimg = round(config.total_kimg * 1000)
        tick_nimg = max(1, round(config.kimg_per_tick * 1000))
        snap_nimg = max(1, round(config.snapshot_kimg * 1000))
        tick_start_nimg, tick_seconds, mark = cur_nimg, 0.0, time.perf_counter()
        last_live = time.monotonic()
        tick_sums: dict[str, torch.Tensor] = {}
        last_snapshot: Path | None = None
        last_metrics: dict[str, float] = {}
        done = cur_nimg >= total_nimg
        while not done:
            # -- Train: every phase due at this step, round by round. --
            images, real_labels = next(batches)
            real = images.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1
            real_c = real_labels.to(device, non_blocking=True)
            sums = StepSums(ada=ada_stats)
            for phase in phases:
                if not phase.due(step):
                    continue
                phase.module.requires_grad_(True)
                phase.optimizer.zero_grad(set_to_none=True)
                loss_sum = torch.zeros([], device=device)
                for j in range(rounds):
                    generator = _round_generator(config.seed, step, phase, procs.rank + procs.world_size * j,
                                                 device)
                    r_img, r_c = real[j::rounds], real_c[j::rounds]
                    n = max(1, len(r_img) // phase.batch_shrink)
                    z = torch.randn([n, net_cfg.z_dim], generator=generator, device=device)
                    gen_c = (labels[torch.randint(len(labels), (n,), generator=generator, device=device)]
                             if labels is not None else None)
                    value = phase.loss(Round(real=r_img, real_c=r_c, z=z, gen_c=gen_c, generator=generator), sums)
                    value.mul(phase.gain / total_rounds).backward()
                    loss_sum += value.detach()
                procs.sum_grads(phase.module)
                _sanitise_grads(phase.module)
                phase.optimizer.step()
                phase.module.requires_grad_(False)
                phase_sums = tick_sums.setdefault(phase.name, torch.zeros(2, device=device))
                phase_sums += torch.stack([loss_sum, torch.tensor(float(rounds), device=device)])

            # -- Per-step state from whole-batch means: mean w (truncation), path-length target. --
            if sums.w is not None:
                G.mapping.track_w_avg((procs.sum(sums.w) / config.batch)[None])
            if sums.pl is not None:
                pl_n = max(1, batch_gpu // config.loss.pl_batch_shrink) * total_rounds
                loss.update_pl_mean(procs.sum(sums.pl) / pl_n)

            # -- G_ema: half-life ema_kimg, ramped up over the first images. --
            ema_nimg = config.resolved_ema_kimg * 1000
            if config.ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * config.ema_rampup)
            _update_ema(G_ema, G, 0.5 ** (config.batch / max(ema_nimg, 1e-8)))
            cur_nimg += config.batch
            step += 1

            # -- ADA: move p towards E[sign(D(real))] == ada_target. --
            if augment_pipe is not None and config.augment == "ada" and step % config.ada_interval == 0:
                total = procs.sum(ada_stats)
                r_t = float(total[0] / total[1].clamp(min=1))
                step_p = config.batch * config.ada_interval / (config.ada_kimg * 1000)
                adjust = np.sign(r_t - config.ada_target) * step_p
                augment_pipe.p.copy_(torch.as_tensor(min(max(float(augment_pipe.p) + adjust, 0.0), ADA_P_MAX)))
                ada_stats.zero_()

            aborted = procs.any(abort_fn is not None and is_main and bool(abort_fn()))
            done = cur_nimg >= total_nimg or aborted
            tick_due = done or cur_nimg >= tick_start_nimg + tick_nimg
            snapshot_due = done or cur_nimg // snap_nimg > (cur_nimg - config.batch) // snap_nimg
            if not (tick_due or snapshot_due):
                if live_fn is not None and is_main and time.monotonic() - last_live >= live_every_s:
                    now = time.perf_counter()
                    tick_seconds += now - mark
                    seconds += now - mark
                    nimg_done = cur_nimg - tick_start_nimg
                    rate = nimg_done / max(tick_seconds, 1e-9)
                    live_fn(TrainProgress(
                        kimg=cur_nimg / 1000, total_kimg=config.total_kimg, tick=tick,
                        sec_per_kimg=1000 / rate, img_per_s=rate,
                        losses={name: float(v[0] / v[1]) for name, v in tick_sums.items() if v[1] > 0},
                        augment_p=float(augment_pipe.p) if augment_pipe is not None else 0.0, done=False,
                        live=True, eta_s=max(total_nimg - cur_nimg, 0) / rate))
                    last_live, mark = time.monotonic(), time.perf_counter()
                continue

            # -- Snapshot, metrics and report (timings exclude this part). --
            elapsed, mark = time.perf_counter() - mark, time.perf_counter()
            tick_seconds += elapsed
            seconds += elapsed
            tick += int(tick_due)
            losses = {name: float(s[0] / s[1]) for name, s in
                      ((name, procs.sum(v)) for name, v in tick_sums.items()) if s[1] > 0}
            augment_p = float(augment_pipe.p) if augment_pipe is not None else 0.0
            snapshot_path = None
            snapshot_metrics: dict[str, float] = {}
            if snapshot_due:
                ada_total = procs.sum(ada_stats)
                if is_main:
                    snapshot_path = out_dir / snapshot_name(cur_nimg)
                    save_snapshot(snapshot_path, {
                        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                        "G_opt": compact_adam_state(g_opt.state_dict()),
                        "D_opt": compact_adam_state(d_opt.state_dict()), "loss": loss.state_dict(),
                        "augment_p": augment_p, "ada_stats": ada_total.tolist(),
                        "cur_nimg": cur_nimg, "step": step, "tick": tick,
                        "data_position": cur_nimg, "seconds": seconds,
                        "rng": {"torch": torch.get_rng_state(),
                                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                        "train_config": config.to_dict(), "network_config": net_cfg.to_dict(),
                    })
                    _save_grid(G_ema, grid_z, grid_c, batch_gpu, out_dir / grid_name(cur_nimg))
                # Every process computes the metrics (they may share the work); rank 0 records them.
                snapshot_metrics = metrics.compute(config.metrics, G_ema, metrics.MetricContext(
                    dataset=dataset, network=net_cfg, device=device, procs=procs, run_dir=out_dir,
                    cur_nimg=cur_nimg, batch_gpu=batch_gpu))
                last_metrics = snapshot_metrics
                if snapshot_path is not None:   # rank 0
                    record = {"kimg": cur_nimg / 1000, "step": step, "losses": losses, "augment_p": augment_p,
                              "pl_mean": float(loss.pl_mean), "seconds": round(seconds, 3),
                              "snapshot": snapshot_path.name, "timestamp": time.time()}
                    if config.metrics:
                        record["metrics"] = snapshot_metrics
                    append_line_durably(out_dir / METRICS_FILE, json.dumps(record))
                    last_snapshot = snapshot_path
            if tick_due:
                kimg_done = (cur_nimg - tick_start_nimg) / 1000
                progress = TrainProgress(
                    kimg=cur_nimg / 1000, total_kimg=config.total_kimg, tick=tick,
                    sec_per_kimg=tick_seconds / kimg_done, img_per_s=kimg_done * 1000 / max(tick_seconds, 1e-9),
                    losses=losses, augment_p=augment_p, done=done,
                    eta_s=max(total_nimg - cur_nimg, 0) / 1000 * tick_seconds / kimg_done,
                    snapshot=None if snapshot_path is None else str(snapshot_path), metrics=snapshot_metrics)
                if is_main:
                    log.info("tick %d  kimg %.3f/%g  %.1f s/kimg  %.2f img/s  p %.3f  %s", tick, progress.kimg,
                             config.total_kimg, progress.sec_per_kimg, progress.img_per_s, augment_p,
                             "  ".join(f"{k} {v:.4f}" for k, v in {**losses, **snapshot_metrics}.items()))
                    if progress_fn is not None:
                        progress_fn(progress)
                tick_sums.clear()
                tick_start_nimg, tick_seconds = cur_nimg, 0.0
            mark, last_live = time.perf_counter(), time.monotonic()

        # -- Done. --
        del batches
        return TrainResult(run_dir=out_dir, cur_nimg=cur_nimg,
                           augment_p=float(augment_pipe.p) if augment_pipe is not None else 0.0,
                           snapshot=last_snapshot, network=net_cfg, G=G, D=D, G_ema=G_ema, metrics=last_metrics)
