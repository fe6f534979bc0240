"""Benchmark: the filter learned from votes, on the proxy set, next to a rule over the checks.

    python -m bench.filter [--seeds 5] [--per-face 20] [--json PATH]

A CPU-trained GAN makes no real faces here, so the votes are the proxy set's labels
(:mod:`samples.proxy_faces`: real aligned crops, good, or with an artifact made by code). Every
item gets its automatic checks (:func:`qa.generated.checks.check_face`); the filter
(:mod:`qa.filter.model`) learns and calibrates its thresholds on the *train* sources only and
is measured on the *held-out* sources, people it never saw. Inside the train side the
calibration folds are drawn by photograph (four with faces, three without): folds by item would
let crops of one photograph score each other, and thresholds chosen on such optimistic scores
fall short on new people. The held-out figures are the honest ones: coverage (the share decided
automatically) and the precision of "accept" and of "reject". The baseline, in the same run, is
the plain rule "any check flagged: reject; none: accept", which decides everything. Repeated over
``--seeds`` split seeds; min and median per figure, the load line, and the figures as JSON on
the last line.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.harness import CpuMeter, emit, load_line, stats
from samples.proxy_faces import build_proxy_set

console = Console()
TARGET = 0.95


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-face", type=int, default=20, help="Jittered crops per source face (the proxy set's size).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.getLogger("faces").setLevel(logging.ERROR)
    from qa.filter import features, model
    from qa.generated.checks import check_face

    meter = CpuMeter().start()
    started = time.perf_counter()
    items = build_proxy_set(per_face=args.per_face)
    checked = [check_face(item.image).checks for item in items]
    console.print(f"proxy set: {len(items)} items ({sum(i.good for i in items)} good) from "
                  f"{len({i.source for i in items})} sources, checked in {time.perf_counter() - started:.1f} s")
    train = [i for i, item in enumerate(items) if item.split == "train"]
    held = [i for i, item in enumerate(items) if item.split != "train"]
    names = features.feature_names(checked[i] for i in train)
    x = features.matrix(names, ((checked[i], items[i].image) for i in range(len(items))))
    good = np.asarray([item.good for item in items], dtype=np.int64)

    rule_decision = np.asarray([not any(e.get("flagged") for e in checked[i].values()) for i in held])
    rule = model.evaluate(rule_decision.astype(float), good[held], model.Thresholds(reject=0.0, accept=1.0))
    figures: dict[str, list[float]] = {"coverage": [], "accept_precision": [], "reject_precision": [], "fit_s": [],
                                       "accept_reach": []}
    thresholds: list[dict[str, float | None]] = []
    for seed in range(args.seeds):
        fit_start = time.perf_counter()
        trained = model.fit(x[train], good[train], names, groups=[items[i].photo for i in train], seed=seed,
                            target=TARGET, test_share=0.0)
        figures["fit_s"].append(time.perf_counter() - fit_start)
        result = model.evaluate(trained.p_good(x[held]), good[held], trained.thresholds)
        console.print(f"  seed {seed}: thresholds {trained.thresholds.as_dict()}; accept "
                      f"{trained.reach['accept'].describe(TARGET)}; held out: {result.describe()}")
        figures["coverage"].append(result.coverage)
        figures["accept_reach"].append(trained.reach["accept"].bound)
        thresholds.append(trained.thresholds.as_dict())
        for key in ("accept_precision", "reject_precision"):
            value = getattr(result, key)
            if value is not None:
                figures[key].append(value)
    report: dict[str, Any] = {
        "items": len(items), "held_out": len(held), "train": len(train), "seeds": args.seeds,
        "filter": {k: stats(v) if v else None for k, v in figures.items()}, "thresholds": thresholds,
        "rule": rule.as_dict(), "load": meter.stop()}
    f = report["filter"]
    console.print(f"filter on {len(held)} held-out items: coverage median {f['coverage']['median']:.1%} "
                  f"(min {f['coverage']['min']:.1%}); accept precision median "
                  f"{_share(f['accept_precision']['median'] if f['accept_precision'] else None)}, reject precision median "
                  f"{_share(f['reject_precision']['median'] if f['reject_precision'] else None)} (target {TARGET:.0%})")
    console.print(f"accept: the best precision bound the train side's out-of-fold scores allow, median "
                  f"{f['accept_reach']['median']:.1%} (target {TARGET:.0%})")
    console.print(f"baseline rule (any check flagged rejects): coverage 100%, accept precision "
                  f"{_share(rule.accept_precision)}, reject precision {_share(rule.reject_precision)}")
    console.print(load_line(report["load"]))
    return emit(report, args.json)


if __name__ == "__main__":
    main()
