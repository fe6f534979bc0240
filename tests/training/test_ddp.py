"""Two CPU processes under torchrun (gloo) train the same weights as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training.conftest import tiny_config
from training.checkpoint import load_snapshot
from training.loop import train
from training.loss import LossConfig

WORKER = """
import json, os, sys, torch
from training.config import TrainConfig
from training.loop import train
result = train(TrainConfig.from_dict(json.loads(open(sys.argv[1]).read())), resume=None)
rank = os.environ["RANK"]
torch.save({"G": result.G.state_dict(), "D": result.D.state_dict(), "augment_p": result.augment_p},
           f"{sys.argv[2]}/rank{rank}.pt")
"""


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(faces16: Path, tmp_path: Path) -> None:
    """Global batch 8: two processes of 4 against one process in two rounds of 4.

    Every round draws from the same seeded generator in both set-ups and sees the same images
    (DistributedSampler shards 8 images evenly), so the only possible difference is how the two
    rounds' gradients are summed (gloo's all-reduce versus accumulation in .grad) and how many
    threads each convolution uses. A sum of two float32 terms does not depend on their order,
    and here the weights come out identical bit for bit; the tolerance (1e-6 absolute) leaves
    room only for thread-count rounding. Bugs this catches (a missing all-reduce, gradients
    averaged twice, unsynchronised w_avg or pl_mean, overlapping shards) move weights by a good
    share of the learning rate, 2.5e-3.
    """
    settings = dict(max_size=8, batch=8, batch_gpu=4, total_kimg=0.032, kimg_per_tick=0.016, snapshot_kimg=1.0,
                    loss=LossConfig(r1_interval=2, pl_interval=2), ada_interval=2, ada_kimg=0.1, ada_target=0.0)
    single = train(tiny_config(faces16, tmp_path / "single", **settings), resume=None)

    config = tiny_config(faces16, tmp_path / "ddp", threads=None, **settings)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "worker.py").write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(tmp_path / "worker.py"), str(tmp_path / "config.json"), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in ("G", "D"):
        for key, value in rank0[name].items():
            assert torch.equal(value, rank1[name][key]), f"ranks disagree on {name}.{key}"
    assert rank0["augment_p"] == pytest.approx(single.augment_p) and single.augment_p > 0
    for name, net in (("G", single.G), ("D", single.D)):
        for key, value in net.state_dict().items():
            torch.testing.assert_close(rank0[name][key], value, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
    snapshots = sorted(p.name for p in (tmp_path / "ddp").glob("network-snapshot-*.pt"))
    assert snapshots == ["network-snapshot-000000.032.pt"]        # written once, by rank 0
    assert load_snapshot(tmp_path / "ddp" / snapshots[0])["cur_nimg"] == 32
