"""bench.filter on a small proxy set: the filter is measured on held-out sources only, and the
report says how sure "accept" could be at best when it decides nothing."""

from __future__ import annotations

from bench import filter as filter_bench


def test_filter_bench_reports_held_out_figures_and_the_accept_reach(testdata_dir) -> None:
    report = filter_bench.main(["--seeds", "1", "--per-face", "3"])
    assert report["held_out"] + report["train"] == report["items"] and report["held_out"] > 0
    coverage = report["filter"]["coverage"]["median"]
    assert 0.0 <= coverage <= 1.0
    reach = report["filter"]["accept_reach"]["median"]   # one seed: its own figure
    [thresholds] = report["thresholds"]
    assert 0.0 <= reach <= 1.0
    # Accept has a threshold exactly when some threshold's precision bound reaches the target.
    assert (thresholds["accept"] is None) == (reach < filter_bench.TARGET)
    rule = report["rule"]
    assert rule["accepted"] + rule["rejected"] == report["held_out"]   # the plain rule decides everything
