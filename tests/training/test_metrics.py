"""The metrics registry, and the loop computing the run's metrics at every snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from likeness.errors import ConfigError
from tests.training.conftest import tiny_config
from training import metrics
from training.checkpoint import load_snapshot
from training.config import TrainConfig, TrainProgress
from training.generator import Generator
from training.loop import train
from training.metrics import MetricContext

CALLS: list[int] = []


@pytest.fixture
def mean_pixel() -> Iterator[str]:
    """A tiny metric: the mean pixel of four G_ema samples. It draws its latents from the global
    RNG on purpose, which the loop must keep from touching the training that follows."""

    @metrics.register("mean_pixel")
    def compute(G_ema: Generator, context: MetricContext) -> dict[str, float]:
        CALLS.append(context.cur_nimg)
        z = torch.randn([4, context.network.z_dim], device=context.device)
        return {"mean_pixel": G_ema(z, noise_mode="const").mean().item()}

    CALLS.clear()
    yield "mean_pixel"
    metrics.unregister("mean_pixel")


def test_register_names_and_refuses_duplicates(mean_pixel: str) -> None:
    assert mean_pixel in metrics.names()
    with pytest.raises(ValueError, match="registered already"):
        metrics.register(mean_pixel)(lambda G_ema, context: {})
    with pytest.raises(ConfigError, match=r"unknown metrics \['fid50k'\]"):
        metrics.check([mean_pixel, "fid50k"])


def test_the_package_registers_no_metric_of_its_own() -> None:
    assert metrics.names() == ()


def test_metrics_are_computed_at_every_snapshot_and_recorded(faces16: Path, tmp_path: Path, mean_pixel: str) -> None:
    reports: list[TrainProgress] = []
    result = train(tiny_config(faces16, tmp_path / "run", metrics=(mean_pixel,)), progress_fn=reports.append)
    assert CALLS == [4, 8]                                   # both snapshots, nothing else
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    values = [line["metrics"][mean_pixel] for line in lines]
    assert len(values) == 2 and values[0] != values[1]
    assert [r.metrics for r in reports] == [{mean_pixel: v} for v in values]
    assert result.metrics == {mean_pixel: values[-1]}

    # The metric changed nothing the run computes or saves.
    plain = train(tiny_config(faces16, tmp_path / "plain"))
    for name in ("G", "D", "G_ema"):
        a, b = getattr(plain, name).state_dict(), getattr(result, name).state_dict()
        assert all(torch.equal(a[key], b[key]) for key in a), name
    assert plain.snapshot is not None and result.snapshot is not None
    assert torch.equal(load_snapshot(plain.snapshot)["rng"]["torch"], load_snapshot(result.snapshot)["rng"]["torch"])
    assert "metrics" not in json.loads((tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()[-1])


def test_an_unknown_metric_stops_the_run_before_it_starts(faces16: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fid50k"):
        train(tiny_config(faces16, tmp_path / "run", metrics=("fid50k",)))
    assert not (tmp_path / "run").exists()


def test_metric_names_round_trip_through_json(faces16: Path, tmp_path: Path) -> None:
    config = tiny_config(faces16, tmp_path, metrics=("a", "b"))
    assert config.metrics == ("a", "b") and config.to_dict()["metrics"] == ["a", "b"]
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="TrainConfig.metrics"):
        tiny_config(faces16, tmp_path, metrics=("a", "a"))
