"""bench.capture in its smallest mode: real DNGs through the live watcher, every frame judged
once, and the figures on the last line of stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import capture
from bench.harness import REPO


def test_percentile_is_nearest_rank() -> None:
    assert capture.percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert capture.percentile([3.0, 1.0, 2.0, 4.0], 95) == 4.0
    assert capture.percentile([5.0], 95) == 5.0
    figures = capture.latency_figures([1.0, 2.0, 3.0])
    assert (figures["n"], figures["p50"], figures["p95"], figures["min"], figures["max"]) == (3, 2.0, 3.0, 1.0, 3.0)
    assert capture.latency_figures([]) == {"n": 0}


def test_options() -> None:
    args = capture.parse_args([])
    assert (args.frames, args.burst, args.pace, args.size, args.workers) == (200, 20, (1.0, 2.0), (6000, 4000), 1)
    args = capture.parse_args(["--frames", "6", "--burst", "4", "--pace", "0.5", "1", "--seed", "3"])
    assert (args.frames, args.burst, args.pace, args.seed) == (6, 4, (0.5, 1.0), 3)
    with pytest.raises(SystemExit):
        capture.parse_args(["--pace", "2", "1"])


def test_small_run_judges_every_frame_once(testdata_dir: Path, tmp_path: Path) -> None:
    # A subprocess, as it is run: the watcher's pool and the floor worker are 'spawn' processes.
    env = {**os.environ, "LIKENESS_TESTDATA": str(testdata_dir)}
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.capture", "--frames", "3", "--burst", "2", "--size", "1536x1024",
         "--pace", "0.3", "0.6", "--settle", "60", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a timing target missed, which is no failure here
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures == json.loads(out.read_text())
    assert (figures["frames"], figures["burst"], figures["written"]) == (3, 2, 5)
    assert (figures["verdicts"], figures["missed"], figures["doubled"]) == (5, 0, 0), figures["per_frame"]
    assert figures["stored_shots"] == 5 and figures["missed_pass"] and figures["drained"]
    assert figures["latency"]["n"] == 3 and 0 < figures["latency"]["p50"] <= figures["latency"]["p95"]
    assert figures["floor"]["median"] > 0 and figures["floors"]["between"] + figures["floors"]["after"] == 3
    assert figures["ratio_p95_to_floor"] == pytest.approx(figures["latency"]["p95"] / figures["floor"]["median"])
    assert figures["burst_latency"]["n"] == 2 and figures["drain_s"] > 0
    assert figures["load"]["cpu_s"] > 0 and "machine load:" in done.stdout
    assert all(r["latency_s"] > 0 and r["verdicts"] == 1 for r in figures["per_frame"])
