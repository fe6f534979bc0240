"""FID and KID: the formulas against independent computations, the feature networks, the metric
inside a training run, and `evaluate_checkpoint` storing values on a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from sqlalchemy import select
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from likeness.config import Settings
from likeness.errors import ConfigError, ConsentViolation, InvalidInput, NotFound
from likeness.models import Checkpoint, TrainingRun
from likeness.workbench import Workbench
from tests.training.conftest import tiny_config
from training import metrics
from training.checkpoint import load_snapshot
from training.dataset import ImageFolderDataset
from training.generator import Generator
from training.loop import train
from training.metrics import fid_kid as fk
from training.metrics.features import FeatureExtractor, RandomConvFeatures, inception_from_settings
from training.networks import NetworkConfig, build_networks
from training.quality import evaluate_checkpoint
from training.runs import start_run

# ---- Independent computations, written from the definitions. ----------------------------------


def reference_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Heusel et al.: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), with scipy's matrix root."""
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3: mean over pairs i != j within each set,
    minus twice the mean over all cross pairs."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (np.einsum("id,jd->ij", a, b) / d + 1.0) ** 3

    def off_diagonal_mean(m: np.ndarray) -> float:
        return float(m[~np.eye(len(m), dtype=bool)].mean())

    return off_diagonal_mean(k(x, x)) + off_diagonal_mean(k(y, y)) - 2 * float(k(x, y).mean())


class AsFeatures(torch.nn.Module):
    """Hands torchmetrics precomputed features as if they were images."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def random_sets(n_real: int = 300, n_fake: int = 260, d: int = 16, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d)) @ rng.normal(size=(d, d))
    fake = rng.normal(size=(n_fake, d)) @ rng.normal(size=(d, d)) * 0.7 + 0.4
    return real, fake


# ---- FID and KID from features. -----------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero() -> None:
    real, _ = random_sets()
    assert fk.fid_from_features(real, real) == pytest.approx(0.0, abs=1e-9 * np.trace(np.cov(real, rowvar=False)))
    # ... also with fewer images than features, where the covariance is singular.
    few = np.random.default_rng(2).normal(size=(10, 64))
    assert fk.fid_from_features(few, few) == pytest.approx(0.0, abs=1e-9 * np.trace(np.cov(few, rowvar=False)))


def test_fid_agrees_with_scipy_and_torchmetrics() -> None:
    real, fake = random_sets()
    ours = fk.fid_from_features(real, fake)
    assert ours == pytest.approx(reference_fid(real, fake), rel=1e-6)
    tm = FrechetInceptionDistance(feature=AsFeatures(real.shape[1]))
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    assert ours == pytest.approx(float(tm.compute()), rel=1e-6)


def test_fid_of_a_mean_shift_is_the_squared_shift() -> None:
    real, _ = random_sets()
    shift = np.linspace(0.1, 1.0, real.shape[1])
    assert fk.fid_from_features(real, real + shift) == pytest.approx(float(np.sum(shift ** 2)), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_kid_agrees_with_the_definition_and_torchmetrics() -> None:
    real, fake = random_sets(n_real=120, n_fake=120)
    # Subsets as large as both sets: every subset is the whole set, so KID is the full unbiased MMD^2.
    kid, kid_std = fk.kid_from_features(real, fake, subsets=5)
    assert kid == pytest.approx(reference_mmd2(fake, real), rel=1e-6)
    assert kid_std == pytest.approx(0.0, abs=1e-9 * abs(kid))
    tm = KernelInceptionDistance(feature=AsFeatures(real.shape[1]), subsets=2, subset_size=120)
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    tm_mean, _ = tm.compute()
    assert kid == pytest.approx(float(tm_mean), rel=1e-6)


def test_kid_over_subsets_averages_the_subset_estimates() -> None:
    real, fake = random_sets(n_real=80, n_fake=200)
    kid, kid_std = fk.kid_from_features(real, fake, subsets=50, max_subset_size=60)
    # The same subsets drawn again, each scored by the definition.
    rng = np.random.default_rng(fk.KID_SEED)
    values = [reference_mmd2(fake[rng.choice(200, 60, replace=False)], real[rng.choice(80, 60, replace=False)])
              for _ in range(50)]
    assert kid == pytest.approx(float(np.mean(values)), rel=1e-6)
    assert kid_std == pytest.approx(float(np.std(values, ddof=1)), rel=1e-6)
    assert kid_std > 0
    assert fk.kid_subset_size(80, 200) == 80 and fk.kid_subset_size(5000, 3000) == fk.MAX_SUBSET_SIZE


def test_shifted_distributions_score_worse() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 8))
    same = rng.normal(size=(200, 8))                     # another draw of the same distribution
    fids, kids = [], []
    for shift in (0.0, 0.5, 1.0, 2.0):
        fids.append(fk.fid_from_features(real, same + shift))
        kids.append(fk.kid_from_features(real, same + shift)[0])
    assert fids == sorted(fids) and kids == sorted(kids)
    assert fids[0] < 0.2 * fids[1] and abs(kids[0]) < 0.02 * kids[1]
    assert fids[3] == pytest.approx(reference_fid(real, same + 2.0), rel=1e-6)


def test_too_few_images_is_a_clear_error() -> None:
    one = np.zeros((1, 4))
    with pytest.raises(InvalidInput, match="at least 2 images"):
        fk.fid_from_features(one, np.ones((5, 4)))
    with pytest.raises(InvalidInput, match="at least 2 images"):
        fk.kid_from_features(np.ones((5, 4)), one)


# ---- Feature extractors. ------------------------------------------------------------------------


def test_random_conv_features_are_deterministic_and_see_differences() -> None:
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    a, b = RandomConvFeatures(), RandomConvFeatures()
    assert isinstance(a, FeatureExtractor)
    fa = a(images)
    assert fa.shape == (6, a.dim) and fa.dtype == np.float64
    assert np.array_equal(fa, b(images)) and a.identity == b.identity
    assert RandomConvFeatures(seed=1).identity != a.identity
    grey = a(images[:, :1])                              # one channel is repeated to three
    assert np.array_equal(grey, a(images[:, :1].expand(-1, 3, -1, -1)))
    brighter = a((images.int() + 60).clamp(max=255).to(torch.uint8))
    assert not np.allclose(fa, brighter)
    with pytest.raises(ValueError, match="uint8"):
        a(images.float())


class ScriptedFeatures(torch.nn.Module):
    """A TorchScript file with the Inception calling convention (not Inception's weights)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        mean = x.float().mean(dim=(2, 3))
        if return_features:
            return torch.cat([mean, mean.square() / 255.0], dim=1)
        return mean[:, :1]


class NoFeatures(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_missing_or_invalid_inception_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FID/KID need LIKENESS_INCEPTION_WEIGHTS.*none ships with the workbench"):
        inception_from_settings(Settings(inception_weights=None))
    missing = tmp_path / "inception-2015-12-05.pt"
    with pytest.raises(ConfigError, match=f"LIKENESS_INCEPTION_WEIGHTS: {missing} does not exist"):
        inception_from_settings(Settings(inception_weights=missing))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a network")
    with pytest.raises(ConfigError, match=f"{garbage} is not a loadable TorchScript file"):
        inception_from_settings(Settings(inception_weights=garbage))
    wrong = tmp_path / "wrong.pt"
    torch.jit.script(NoFeatures()).save(str(wrong))
    with pytest.raises(ConfigError, match=r"return_features=True\) fails"):
        inception_from_settings(Settings(inception_weights=wrong))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_feature_network_loads_from_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "features.pt"
    torch.jit.script(ScriptedFeatures()).save(str(path))
    extractor = inception_from_settings(Settings(inception_weights=path))
    assert isinstance(extractor, FeatureExtractor) and extractor.dim == 6 and extractor.key_suffix == ""
    assert extractor.identity.startswith("inception-v3:") and len(extractor.identity) == len("inception-v3:") + 64
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    expected = ScriptedFeatures()(images, return_features=True).double().numpy()
    assert np.allclose(extractor(images), expected)


def test_real_features_are_cached_by_dataset_and_extractor(faces16: Path, tmp_path: Path) -> None:
    with ImageFolderDataset(faces16) as dataset:
        first = fk.real_features(dataset, RandomConvFeatures(), batch=5, cache_dir=tmp_path)
        (cache,) = tmp_path.glob(f"{fk.CACHE_PREFIX}*.npy")
        assert first.shape == (len(dataset), RandomConvFeatures().dim)
        assert np.array_equal(np.load(cache), first)
        assert np.array_equal(fk.real_features(dataset, RandomConvFeatures(), cache_dir=tmp_path), first)
        fk.real_features(dataset, RandomConvFeatures(seed=1), cache_dir=tmp_path)   # another extractor
        assert len(list(tmp_path.glob(f"{fk.CACHE_PREFIX}*.npy"))) == 2
        cache.write_bytes(b"damaged")                                             # recomputed, rewritten
        assert np.array_equal(fk.real_features(dataset, RandomConvFeatures(), cache_dir=tmp_path), first)
        assert np.array_equal(np.load(cache), first)
    with ImageFolderDataset(faces16, xflip=True) as mirrored:                    # mirrored copies: other key
        assert len(fk.real_features(mirrored, RandomConvFeatures(), cache_dir=tmp_path)) == 2 * len(first)


# ---- The metric in training runs. ---------------------------------------------------------------

RANDCONV_KEYS = {"fid_randconv", "kid_randconv", "kid_std_randconv", "fid_kid_num_gen_randconv",
                 "fid_kid_num_real_randconv"}


@pytest.fixture
def small_fid() -> Iterator[str]:
    """FID/KID on our own features, eight generated images: quick enough for a tiny run."""
    name = "fid_kid_small"
    metrics.register(name)(fk.fid_kid_metric(RandomConvFeatures(), num_gen=8, subsets=10))
    yield name
    metrics.unregister(name)


def _generator_of(snapshot: Path) -> Generator:
    state = load_snapshot(snapshot)
    G, _ = build_networks(NetworkConfig.from_dict(state["network_config"]))
    G.load_state_dict(state["G_ema"])
    return G.eval()


def test_the_metric_runs_at_every_snapshot_and_is_recorded(faces16: Path, tmp_path: Path, small_fid: str) -> None:
    run = tmp_path / "run"
    result = train(tiny_config(faces16, run, metrics=(small_fid,)))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [set(line["metrics"]) for line in lines] == [RANDCONV_KEYS, RANDCONV_KEYS]
    last = lines[-1]["metrics"]
    assert last["fid_kid_num_gen_randconv"] == 8 and last["fid_kid_num_real_randconv"] == len(ImageFolderDataset(faces16))
    assert last["fid_randconv"] > 0 and last == result.metrics
    assert len(list(run.glob(f"{fk.CACHE_PREFIX}*.npy"))) == 1          # real features cached once
    # The same numbers again from the snapshot file, outside the loop.
    with ImageFolderDataset(faces16) as dataset:
        again = fk.fid_kid(_generator_of(run / lines[-1]["snapshot"]), dataset,
                           RandomConvFeatures(), num_gen=8, subsets=10, batch=4)
    assert again.values() == pytest.approx(last, rel=1e-6)


def test_register_metrics_names_them_and_checks_the_inception_setting(tmp_path: Path) -> None:
    try:
        fk.register_metrics(Settings(inception_weights=tmp_path / "absent.pt"))
        assert set(fk.METRIC_NAMES) <= set(metrics.names())
        fk.register_metrics(Settings(inception_weights=None))             # again: replaces, no error
        with pytest.raises(ConfigError, match="LIKENESS_INCEPTION_WEIGHTS"):
            fk.check_ready(["fid_kid"])
        fk.check_ready(["fid_kid_randconv", "not_ours"])
    finally:
        for name in fk.METRIC_NAMES:
            metrics.unregister(name)
    assert not set(fk.METRIC_NAMES) & set(metrics.names())


def _checkpoint_rows(workbench: Workbench, run_id: int) -> list[Checkpoint]:
    with workbench.db.unit_of_work() as session:
        rows = list(session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.kimg)))
        session.expunge_all()
    return rows


def test_metric_values_land_in_the_checkpoint_row_and_evaluate_checkpoint_adds_to_them(
        workbench: Workbench, faces16: Path, tmp_path: Path, small_fid: str) -> None:
    run_id = start_run(workbench, tiny_config(faces16, tmp_path / "run", metrics=(small_fid,)), external=True)
    first, last = _checkpoint_rows(workbench, run_id)
    assert set(first.metrics["metrics"]) == RANDCONV_KEYS and "losses" in first.metrics

    # On demand, with another count: merged into the row, the loop's values and everything else kept.
    quality = evaluate_checkpoint(workbench, first.id, extractor=RandomConvFeatures(), num_gen=12, batch=4,
                                  subsets=10)
    assert quality.values["fid_kid_num_gen_randconv"] == 12 and quality.result.num_real == len(ImageFolderDataset(faces16))
    stored = _checkpoint_rows(workbench, run_id)[0].metrics
    assert stored["losses"] == first.metrics["losses"] and stored["step"] == first.metrics["step"]
    assert stored["metrics"] == {**first.metrics["metrics"], **quality.values}
    record = stored["quality"]["fid_kid_randconv"]
    assert record["extractor"] == RandomConvFeatures().identity and record["num_gen"] == 12
    assert record["dataset_fingerprint"] == ImageFolderDataset(faces16).fingerprint()

    # With the loop's count and batch it reproduces the loop's numbers for that snapshot.
    again = evaluate_checkpoint(workbench, last.id, extractor=RandomConvFeatures(), num_gen=8, batch=4, subsets=10)
    assert again.values == pytest.approx(last.metrics["metrics"], rel=1e-6)


def test_evaluate_checkpoint_refuses_what_it_cannot_or_may_not_evaluate(
        workbench: Workbench, faces16: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(faces16, tmp_path / "data"))
    run_id = start_run(workbench, tiny_config(data, tmp_path / "run", total_kimg=0.004), external=True)
    (checkpoint,) = _checkpoint_rows(workbench, run_id)
    before = checkpoint.metrics

    with pytest.raises(NotFound, match="no checkpoint #999999"):
        evaluate_checkpoint(workbench, 999999, extractor=RandomConvFeatures())
    with pytest.raises(ConfigError, match="LIKENESS_INCEPTION_WEIGHTS"):     # the test settings name no weights
        evaluate_checkpoint(workbench, checkpoint.id, num_gen=4)

    # The dataset changed since the run read it: FID against other data would mislead.
    removed = sorted(data.rglob("*.png"))[0]
    kept = removed.read_bytes()
    removed.unlink()
    with pytest.raises(InvalidInput, match="not the one training run"):
        evaluate_checkpoint(workbench, checkpoint.id, extractor=RandomConvFeatures(), num_gen=4)
    removed.write_bytes(kept)

    with workbench.db.unit_of_work() as session:
        session.get_one(Checkpoint, checkpoint.id).tainted = True
    with pytest.raises(ConsentViolation, match="tainted"):
        evaluate_checkpoint(workbench, checkpoint.id, extractor=RandomConvFeatures(), num_gen=4)
    with workbench.db.unit_of_work() as session:
        session.get_one(Checkpoint, checkpoint.id).tainted = False
        session.get_one(TrainingRun, run_id).dataset_path = str(tmp_path / "gone")
    with pytest.raises(NotFound, match="gone.*does not exist"):
        evaluate_checkpoint(workbench, checkpoint.id, extractor=RandomConvFeatures(), num_gen=4)
    assert _checkpoint_rows(workbench, run_id)[0].metrics == before


WORKER = """
import json, os, sys
from training import metrics
from training.config import TrainConfig
from training.loop import train
from training.metrics import fid_kid
from training.metrics.features import RandomConvFeatures
metrics.register("fid_kid_small")(fid_kid.fid_kid_metric(RandomConvFeatures(), num_gen=9, subsets=10))
config = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
result = train(config, resume=None)
log = os.path.join(config.out_dir, "metrics.jsonl")     # what rank 0 had written when this rank left
records = len(open(log).read().splitlines()) if os.path.exists(log) else 0
with open(f"{sys.argv[2]}/rank{os.environ['RANK']}.json", "w") as handle:
    json.dump({"metrics": result.metrics, "records": records}, handle)
"""


@pytest.mark.slow
def test_two_gloo_processes_share_the_work_and_agree(faces16: Path, tmp_path: Path) -> None:
    """Each process scores every other image; the sums give both the whole sets and one answer.

    No process leaves before rank 0 has written the run's last record (a rank that exits early
    makes torchrun stop the others, rank 0's final writes included)."""
    config = tiny_config(faces16, tmp_path / "ddp", threads=None, batch=8, batch_gpu=4, total_kimg=0.008,
                         metrics=("fid_kid_small",))
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "worker.py").write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(tmp_path / "worker.py"), str(tmp_path / "config.json"), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [report["records"] for report in reports] == [1, 1]
    rank0, rank1 = (report["metrics"] for report in reports)
    assert rank0 == rank1 and rank0["fid_kid_num_gen_randconv"] == 9      # an odd count: uneven shares
    (snapshot,) = sorted((tmp_path / "ddp").glob("network-snapshot-*.pt"))
    with ImageFolderDataset(faces16) as dataset:
        alone = fk.fid_kid(_generator_of(snapshot), dataset, RandomConvFeatures(), num_gen=9, subsets=10, batch=4)
    assert alone.values() == pytest.approx(rank0, rel=1e-5)
