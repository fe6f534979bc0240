"""Training: losses, regularisers, ADA, snapshots, exact resume and convergence on real faces."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
import torch
from PIL import Image
from torch import nn

from likeness.errors import ConfigError, InvalidInput, NotFound
from likeness.files import write_atomic
from tests.training.conftest import TINY, tiny_config
from training.checkpoint import find_latest_snapshot, load_snapshot, save_snapshot, snapshot_name
from training.config import TrainConfig, TrainProgress
from training.dataset import ImageFolderDataset
from training.loop import train
from training.loss import LossConfig, StyleGAN2Loss
from training.networks import Discriminator, NetworkConfig, build_networks

# A tick every two steps of tiny_config and a snapshot only at the end of the run.
SPARSE = dict(kimg_per_tick=0.008, snapshot_kimg=1.0)


def make_loss(seed: int = 0, **loss_overrides) -> StyleGAN2Loss:
    torch.manual_seed(seed)
    G, D = build_networks(NetworkConfig(**TINY))
    return StyleGAN2Loss(G, D, config=LossConfig(**loss_overrides), r1_gamma=1.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ConstantD(nn.Module):
    """A discriminator that answers `value` for every image (or a fixed linear map of it)."""

    c_dim = 0

    def __init__(self, value: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.value = value
        self.weight = weight

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.weight is None:
            return img.sum(dim=[1, 2, 3], keepdim=True)[:, :1] * 0 + self.value
        return (img * self.weight).sum(dim=[1, 2, 3])[:, None]


# -- losses ------------------------------------------------------------------------------------

def test_logistic_losses_match_their_formula_for_a_constant_discriminator() -> None:
    loss = make_loss()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = torch.randn(4, 16)
    for value in (-3.0, 0.0, 5.0):
        loss.D = cast(Discriminator, ConstantD(value))
        d_loss, _ = loss.d_main(real, None, z, None, generator=gen())
        g_loss, _ = loss.g_main(z, None, generator=gen())
        v = torch.tensor(value)
        assert d_loss.item() == pytest.approx((nn.functional.softplus(v) + nn.functional.softplus(-v)).item(), rel=1e-6)
        assert g_loss.item() == pytest.approx(nn.functional.softplus(-v).item(), rel=1e-6)


def test_a_step_down_each_gradient_lowers_its_loss() -> None:
    """The sign check: D's loss falls when D follows its gradient, and G's when G follows its."""
    loss = make_loss()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = torch.randn(4, 16)
    for net, run in ((loss.D, lambda: loss.d_main(real, None, z, None, generator=gen(1))[0]),
                     (loss.G, lambda: loss.g_main(z, None, generator=gen(1))[0])):
        before = run()
        assert torch.isfinite(before)
        params: list[torch.Tensor] = [p for p in net.parameters()]
        grads = torch.autograd.grad(before, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p -= 1e-3 * g
        assert run().item() < before.item()


def test_r1_is_gamma_half_the_squared_input_gradient() -> None:
    loss = make_loss()
    real = torch.rand(3, 3, 16, 16) * 2 - 1
    weight = torch.randn(3, 16, 16)
    loss.D = cast(Discriminator, ConstantD(weight=weight))
    loss.r1_gamma = 10.0
    value, penalty = loss.d_r1(real, None, generator=gen())
    assert penalty.tolist() == pytest.approx([weight.square().sum().item()] * 3, rel=1e-5)
    assert value.item() == pytest.approx(5.0 * weight.square().sum().item(), rel=1e-5)
    loss.D = cast(Discriminator, ConstantD(2.0))   # a D that ignores its input has no R1 penalty
    assert loss.d_r1(real, None, generator=gen())[0].item() == 0.0


def test_r1_trains_d_through_a_double_backward_and_leaves_g_alone() -> None:
    loss = make_loss()
    loss.G.requires_grad_(False)
    value, penalty = loss.d_r1(torch.rand(4, 3, 16, 16) * 2 - 1, None, generator=gen())
    assert value.item() > 0 and torch.isfinite(penalty).all()
    value.backward()
    d_grads = [p.grad for p in loss.D.parameters() if p.grad is not None]
    assert d_grads and any(g.abs().sum() > 0 for g in d_grads)
    assert all(torch.isfinite(g).all() for g in d_grads)
    assert all(p.grad is None for p in loss.G.parameters())


def test_path_length_penalty_is_measured_from_pl_mean() -> None:
    loss = make_loss(pl_decay=0.5)
    z = torch.randn(4, 16)
    value0, lengths = loss.g_path_length(z, None, generator=gen())
    assert (lengths > 0).all() and value0.item() == pytest.approx(2.0 * lengths.square().mean().item(), rel=1e-5)
    loss.update_pl_mean(lengths.mean())
    assert loss.pl_mean.item() == pytest.approx(0.5 * lengths.mean().item(), rel=1e-6)
    value1, _ = loss.g_path_length(z, None, generator=gen())
    assert value1.item() < value0.item()     # the same lengths, measured from a closer target
    value1.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.G.synthesis.parameters())


def test_style_mixing_takes_fine_styles_from_a_second_latent() -> None:
    z = torch.randn(6, 16)
    _, ws, w = make_loss(style_mixing_prob=0.0).generate(z, None, generator=gen())
    assert torch.equal(ws, w[:, None].expand_as(ws))
    _, ws, w = make_loss(style_mixing_prob=1.0).generate(z, None, generator=gen())
    assert torch.equal(ws[:, 0], w)                          # coarse styles from z
    assert all(not torch.equal(ws[i, -1], w[i]) for i in range(6))  # fine ones from the other latent


# -- the loop ----------------------------------------------------------------------------------

def test_progress_reports_and_run_folder(faces16: Path, tmp_path: Path) -> None:
    reports: list[TrainProgress] = []
    result = train(tiny_config(faces16, tmp_path / "run", total_kimg=0.024, **SPARSE), progress_fn=reports.append)
    assert [r.tick for r in reports] == [1, 2, 3] and [r.done for r in reports] == [False, False, True]
    assert reports[-1].kimg == pytest.approx(0.024) and reports[-1].img_per_s > 0
    assert set(reports[0].losses) == {"D", "D_r1", "G", "G_pl"}
    assert all(math.isfinite(v) for r in reports for v in r.losses.values())
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["fakes000000.024.png", "metrics.jsonl", "network-snapshot-000000.024.pt", "training_options.json"]
    assert result.snapshot == tmp_path / "run" / "network-snapshot-000000.024.pt"
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["kimg"] == pytest.approx(0.024) and set(line) >= {"losses", "augment_p", "seconds"}
    with Image.open(tmp_path / "run" / "fakes000000.024.png") as grid:
        assert grid.size == (32, 32)                      # 4 samples of 16x16 in a 2x2 grid


def test_resume_continues_exactly_like_an_uninterrupted_run(faces16: Path, tmp_path: Path) -> None:
    """6 steps straight == 3 steps, stop, resume 'auto' from the snapshot, 3 more steps.

    The stop falls inside an ADA interval and between lazy-regulariser steps, with p moving.
    """
    settings = dict(loss=LossConfig(r1_interval=4, pl_interval=2), ada_interval=2, ada_kimg=0.05,
                    ada_target=0.0, xflip=True, **SPARSE)
    straight = train(tiny_config(faces16, tmp_path / "straight", total_kimg=0.024, **settings))
    first = train(tiny_config(faces16, tmp_path / "resumed", total_kimg=0.012, **settings))
    assert first.cur_nimg == 12
    resumed = train(tiny_config(faces16, tmp_path / "resumed", total_kimg=0.024, **settings))
    assert resumed.cur_nimg == straight.cur_nimg == 24
    assert resumed.augment_p == straight.augment_p > 0
    for name in ("G", "D", "G_ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key}"
    assert straight.snapshot is not None and resumed.snapshot is not None
    s1 = load_snapshot(straight.snapshot)
    s2 = load_snapshot(resumed.snapshot)
    assert s1["step"] == s2["step"] == 6 and s1["cur_nimg"] == s2["cur_nimg"] == 24
    assert torch.equal(s1["loss"]["pl_mean"], s2["loss"]["pl_mean"])
    for key in ("G_opt", "D_opt"):
        for i, state in s1[key]["state"].items():
            assert all(torch.equal(v, s2[key]["state"][i][k]) for k, v in state.items())


def test_snapshot_loads_with_weights_only_and_restores_optimisers(faces16: Path, tmp_path: Path) -> None:
    result = train(tiny_config(faces16, tmp_path / "run", total_kimg=0.008, **SPARSE))
    assert result.snapshot is not None
    state = torch.load(result.snapshot, weights_only=True)
    assert state["format"] == "likeness.stylegan2-ada.snapshot" and state["cur_nimg"] == 8
    assert state["rng"]["torch"].dtype == torch.uint8
    assert NetworkConfig.from_dict(state["network_config"]) == NetworkConfig(**TINY)
    assert TrainConfig.from_dict(state["train_config"]) == tiny_config(faces16, tmp_path / "run", total_kimg=0.008,
                                                                        **SPARSE)
    G, D = build_networks(NetworkConfig(**TINY))
    G.load_state_dict(state["G_ema"])
    opt = torch.optim.Adam(D.parameters())
    opt.load_state_dict(state["D_opt"])
    assert opt.state_dict()["state"][0]["exp_avg_sq"].abs().sum() > 0
    json.dumps(state["train_config"])


def test_resume_refuses_other_files_and_other_networks(faces16: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInput, match="bogus.pt"):
        train(tiny_config(faces16, tmp_path / "a", total_kimg=0.024, **SPARSE), resume=bogus)
    with pytest.raises(NotFound, match="missing.pt"):
        train(tiny_config(faces16, tmp_path / "a", total_kimg=0.024, **SPARSE), resume=tmp_path / "missing.pt")
    torch.save({"G": {}}, tmp_path / "plain.pt")
    with pytest.raises(InvalidInput, match="not a likeness training snapshot"):
        load_snapshot(tmp_path / "plain.pt")
    first = train(tiny_config(faces16, tmp_path / "b", total_kimg=0.004, **SPARSE))
    wider = dataclasses.replace(NetworkConfig(**TINY), channel_max=32)
    with pytest.raises(ConfigError, match="channel_max: 16 -> 32"):
        train(tiny_config(faces16, tmp_path / "b", network=wider, total_kimg=0.024, **SPARSE), resume=first.snapshot)


def test_atomic_save_survives_a_kill_and_leftovers_are_ignored(tmp_path: Path) -> None:
    good = {"G": {}, "D": {}, "G_ema": {}, "G_opt": {}, "D_opt": {}, "loss": {}, "augment_p": 0.0,
            "ada_stats": [0.0, 0.0], "cur_nimg": 4000, "step": 1, "tick": 1, "rng": {},
            "train_config": {}, "network_config": {}}
    path = save_snapshot(tmp_path / snapshot_name(4000), good)
    assert path.name == "network-snapshot-000004.000.pt"
    # A process killed in the middle of writing the next snapshot over the same name.
    code = ("import os, signal, sys\n"
            "from likeness.files import write_atomic\n"
            "def half(handle):\n"
            "    handle.write(b'x' * 100000); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"write_atomic(__import__('pathlib').Path({str(path)!r}), half)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and all(n.startswith(".network-snapshot-000004.000.pt.") for n in leftovers)
    (tmp_path / "network-snapshot-000009.pt.partial").write_bytes(b"junk")
    assert find_latest_snapshot(tmp_path) == path
    assert load_snapshot(path)["cur_nimg"] == 4000
    # A writer that fails leaves neither its temporary file nor a changed target.
    with pytest.raises(OSError):
        write_atomic(path, lambda handle: (_ for _ in ()).throw(OSError("disk full")))
    assert load_snapshot(path)["cur_nimg"] == 4000
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(leftovers)
    save_snapshot(tmp_path / snapshot_name(12000), good)
    assert cast(Path, find_latest_snapshot(tmp_path)).name == "network-snapshot-000012.000.pt"
    assert find_latest_snapshot(tmp_path / "nothing-here") is None


def test_ada_raises_p_when_d_overfits_a_tiny_dataset(faces16: Path, tmp_path: Path) -> None:
    """8 images: D soon calls every real real, so r_t = E[sign(D(real))] passes the target and
    p climbs (ada_kimg is tiny so that p moves fast enough to see)."""
    reports: list[TrainProgress] = []
    config = tiny_config(faces16, tmp_path / "run", max_size=8, batch=8, total_kimg=0.8, kimg_per_tick=0.08,
                         snapshot_kimg=1.0, ada_kimg=1.0, ada_interval=2)
    result = train(config, progress_fn=reports.append)
    ps = [r.augment_p for r in reports]
    assert ps[-1] > 0.1 and ps[-1] == pytest.approx(result.augment_p)
    assert ps[-1] > ps[len(ps) // 2] > 0


def test_fixed_and_off_augmentation_keep_p(faces16: Path, tmp_path: Path) -> None:
    fixed = train(tiny_config(faces16, tmp_path / "fixed", augment="fixed", augment_p=0.3, total_kimg=0.008, **SPARSE))
    assert fixed.augment_p == pytest.approx(0.3)
    off = train(tiny_config(faces16, tmp_path / "off", augment="off", total_kimg=0.008, **SPARSE))
    assert off.augment_p == 0.0


def test_config_errors_name_the_setting(faces16: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TrainConfig.augment "):
        tiny_config(faces16, tmp_path, augment="sometimes")
    with pytest.raises(ConfigError, match="batch_gpu 3"):
        train(tiny_config(faces16, tmp_path / "x", batch_gpu=3, total_kimg=0.024, **SPARSE))
    with pytest.raises(ConfigError, match="network.resolution is 32"):
        train(tiny_config(faces16, tmp_path / "x", network=NetworkConfig(**{**TINY, "resolution": 32}),
                          total_kimg=0.024, **SPARSE))
    config = tiny_config(faces16, tmp_path, loss=LossConfig(r1_gamma=2.0))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- convergence on real faces -----------------------------------------------------------------

def colour_statistics(images: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std over all pixels and the 4x4 mean image: 6 + 48 numbers."""
    mean_image = nn.functional.adaptive_avg_pool2d(images.mean(dim=0, keepdim=True), 4).flatten()
    return torch.cat([images.mean(dim=[0, 2, 3]), images.std(dim=[0, 2, 3]), mean_image])


@pytest.mark.slow
def test_g_ema_moves_towards_real_faces(faces16: Path, tmp_path: Path) -> None:
    """Statistic: the L2 distance between colour_statistics (per-channel mean and std, and the
    4x4-pooled mean image) of 64 G_ema samples and of the 19 real 16x16 face crops. After 300
    steps of 8 images (about 15 s on 2 idle cores) it must fall below a third of its value for
    the untrained G_ema (measured: 5.2 -> 0.9)."""
    data = ImageFolderDataset(faces16)
    reals = torch.stack([data[i][0] for i in range(len(data))]).float() / 127.5 - 1
    target = colour_statistics(reals)
    z = torch.randn(64, 16, generator=gen(123))
    config = tiny_config(faces16, tmp_path / "run", batch=8, total_kimg=2.4, kimg_per_tick=0.8, snapshot_kimg=1.0,
                         ema_kimg=0.1, threads=None)
    torch.manual_seed(config.seed)
    assert config.network is not None
    untrained, _ = build_networks(config.network)      # what G_ema is before the first step
    with torch.no_grad():
        before = (colour_statistics(untrained(z, noise_mode="const")) - target).norm().item()
    result = train(config)
    with torch.no_grad():
        after = (colour_statistics(result.G_ema(z, noise_mode="const")) - target).norm().item()
    assert after < before / 3, (before, after)
