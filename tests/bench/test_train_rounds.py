"""bench.train alternates ours and the peer round by round and reports their ratios."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TypeVar

import pytest

from bench import train

T = TypeVar("T")


def _noted(log: list[T], entry: T) -> bool:
    """Append `entry` to `log` inside a lambda; falsy, so `_noted(...) or value` yields value."""
    log.append(entry)
    return False



def _run(peer: float, ours: float, rss: float) -> dict:
    return {"img_per_s": ours if peer == 0 else peer, "sec_per_kimg": 1.0, "cpu_sec_per_kimg": 1.0,
            "peak_rss_mib": rss, "params": {"G": 1, "D": 2}, "other_load": 0.0}


def test_rounds_alternate_and_ratios(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    ours_rates, peer_rates = iter([4.0, 6.0]), iter([2.0, 2.0])
    monkeypatch.setattr(train, "ensure_peer_venv", lambda venv, say: Path("python"))
    monkeypatch.setattr(train, "wait_for_quiet", lambda limit, say: calls.append("wait"))
    monkeypatch.setattr(train, "time_ours", lambda args, work: _noted(calls, "ours") or _run(0, next(ours_rates), 100))
    monkeypatch.setattr(train, "time_peer",
                        lambda python, args, work: _noted(calls, "peer") or _run(next(peer_rates), 0, 200))
    monkeypatch.setattr(sys, "argv", ["bench.train", "--rounds", "2"])
    train.main()
    assert calls == ["wait", "ours", "wait", "peer", "wait", "ours", "wait", "peer"]
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["round 1: ours 4.00 img/s", "round 1: peer 2.00 img/s",
                       "round 2: ours 6.00 img/s", "round 2: peer 2.00 img/s"]
    assert "img/s ratio ours/peer: 2.50 (rounds: 2.00, 3.00); target >= 1.5: PASS" in out
    assert "peak RSS ours/peer: 0.50; target <= 1: PASS" in out
    figures = json.loads(out[-1])
    assert figures["ratio_img_per_s"] == 2.5 and figures["ratio_per_round"] == [2.0, 3.0]


def test_without_peer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(train, "wait_for_quiet", lambda limit, say: None)
    monkeypatch.setattr(train, "time_ours", lambda args, work: _run(0, 3.0, 100))
    monkeypatch.setattr(sys, "argv", ["bench.train", "--rounds", "1", "--no-peer"])
    train.main()
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "peer" not in figures and figures["ours"]["img_per_s"] == 3.0
