"""bench.filter on a small proxy set: the filter is measured on held-out sources only, and the
report says how sure "accept" could be at best."""

from __future__ import annotations

from bench import filter as filter_bench
from samples.proxy_faces import build_proxy_set


def test_filter_bench_measures_the_held_out_sources_and_reports_the_accept_reach(testdata_dir) -> None:
    report = filter_bench.main(["--seeds", "1", "--per-face", "3"])
    held = [item for item in build_proxy_set(per_face=3) if item.split == "held_out"]
    assert report["held_out"] == len(held) and report["items"] == report["held_out"] + report["train"]
    rule = report["rule"]
    assert rule["good"] == sum(item.good for item in held)              # figures over the held-out items alone
    assert rule["accepted"] + rule["rejected"] == len(held)             # the plain rule decides everything
    assert 0.0 < report["filter"]["accept_reach"]["median"] <= 1.0
    [thresholds] = report["thresholds"]
    if thresholds["accept"] is None and thresholds["reject"] is None:  # a filter that decides nothing
        assert report["filter"]["coverage"]["median"] == 0.0
        assert report["filter"]["accept_precision"] is None and report["filter"]["reject_precision"] is None
