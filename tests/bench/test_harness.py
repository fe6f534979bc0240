"""The benchmarks' shared harness: timers, rounds, ratios, settings, workbench, step clock."""

from __future__ import annotations

import ast
import datetime as dt
import sys
import types
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from bench import harness
from likeness.models import Person, Release

BENCH = Path(harness.__file__).resolve().parent

T = TypeVar("T")


def _noted(log: list[T], entry: T) -> bool:
    """Append `entry` to `log` inside a lambda; falsy, so `_noted(...) or value` yields value."""
    log.append(entry)
    return False



def test_stats_and_compare() -> None:
    assert harness.stats([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
    figures = harness.compare([2.0, 4.0], [3.0, 4.0])
    assert figures["baseline"] == {"min": 2.0, "median": 3.0, "max": 4.0}
    assert figures["ratio_of_mins"] == 1.5
    assert figures["ratio_of_medians"] == 3.5 / 3.0
    assert figures["ratio_of_means"] == 3.5 / 3.0
    assert figures["per_round"] == [1.5, 1.0]
    assert figures["median_per_round"] == 1.25
    assert (harness.verdict(True), harness.verdict(False)) == ("PASS", "MISS")


def test_alternate_runs_the_sides_in_turn() -> None:
    calls: list[str] = []
    results = harness.alternate(
        [1, 2],
        [lambda r: _noted(calls, f"a{r}") or f"a{r}", lambda r: _noted(calls, f"b{r}") or f"b{r}"],
        before=lambda: calls.append("wait"),
    )
    assert results == [["a1", "a2"], ["b1", "b2"]]
    assert calls == ["wait", "a1", "wait", "b1", "wait", "a2", "wait", "b2"]


def test_timed_and_cpu_meter() -> None:
    seconds, value = harness.timed(lambda: 42)
    assert value == 42 and seconds >= 0
    meter = harness.CpuMeter().start()
    sum(range(10_000))
    assert meter.elapsed() >= 0
    assert set(meter.stop()) == {"cpu_s", "other_cpu_s", "other_load"}
    assert harness.peak_rss_mib() > 0


def test_explicit_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIKENESS_BATCH_SIZE", "3")
    monkeypatch.setenv("LIKENESS_DATABASE_URL", "sqlite:////nowhere/else.db")
    monkeypatch.setenv("LIKENESS_LABEL_PUSH_BATCH", "7")
    settings = harness.explicit_settings(data_dir=tmp_path, workers=1)
    assert settings.batch_size == 16 and settings.database_url is None and settings.label_push_batch == 1000
    assert settings.workers == 1 and settings.data_dir == tmp_path


def test_fresh_workbench_registers_released_sitters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIKENESS_BLOB_URL", str(tmp_path / "elsewhere"))
    signed = dt.date.today()
    workbench = harness.fresh_workbench(tmp_path / "wb", workers=0, sitters=["P0001", "P0002"],
                                        release_signed_on=signed)
    try:
        assert workbench.settings.resolved_blob_url == str((tmp_path / "wb" / "blobs").resolve())
        assert (tmp_path / "wb" / "likeness.db").is_file()
        with workbench.db.unit_of_work() as session:
            assert sorted(session.scalars(select(Person.code))) == ["P0001", "P0002"]
            releases = session.scalars(select(Release)).all()
            assert [(r.signed_on, r.scopes) for r in releases] == [(signed, ["ai_training"])] * 2
    finally:
        workbench.close()


def test_step_clock_times_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bench_step_clock_probe")
    exec(  # functions that look each other up in their module, as real code does
        "from contextlib import contextmanager\n"
        "def outer(x):\n    return inner(x) + 1\n"
        "def inner(x):\n    return x * 2\n"
        "class Store:\n    @contextmanager\n    def transaction(self):\n        yield 'tx'\n",
        module.__dict__,
    )
    outer, inner, transaction = module.outer, module.inner, module.Store.__dict__["transaction"]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    steps = (
        harness.Step("outer", module.__name__, "outer"),
        harness.Step("inner", module.__name__, "inner", parent="outer"),
        harness.Step("tx", f"{module.__name__}:Store", "transaction", context=True),
        harness.Step("only odd", module.__name__, "inner", when=lambda args, kwargs: args[0] % 2 == 1),
    )
    clock = harness.StepClock()
    restore = clock.instrument(steps[:3])
    try:
        assert module.outer(3) == 7
        module.inner(5)  # outside its parent step: not counted
        with module.Store().transaction() as tx:
            assert tx == "tx"
    finally:
        restore()
    assert module.outer is outer and module.inner is inner and module.Store.__dict__["transaction"] is transaction
    assert {step: int(calls) for step, (_w, _c, calls) in clock.totals.items()} == {"outer": 1, "inner": 1, "tx": 2}
    odd = harness.StepClock()
    restore = odd.instrument(steps[3:])
    try:
        module.inner(2)
        module.inner(3)
    finally:
        restore()
    assert odd.totals["only odd"][2] == 1
    assert odd.seconds("never") == (0.0, 0.0)


def test_benchmarks_share_only_the_harness() -> None:
    """No benchmark imports another benchmark module, nor a private name from the harness."""
    for path in sorted(BENCH.glob("*.py")):
        if path.name in {"__init__.py", "harness.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                assert node.module == "bench.harness", f"{path.name} imports {node.module}"
                assert not any(alias.name.startswith("_") for alias in node.names), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("bench.") and a.name != "bench.harness" for a in node.names)


def test_available_keeps_only_steps_whose_function_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bench_available_probe")
    exec("def present():\n    return 1\nclass Box:\n    def method(self):\n        return 2\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    steps = [
        harness.Step("a", module.__name__, "present"),
        harness.Step("b", module.__name__, "absent"),
        harness.Step("c", f"{module.__name__}:Box", "method"),
        harness.Step("d", f"{module.__name__}:NoSuchClass", "method"),
        harness.Step("e", "no_such_module_for_bench", "anything"),
    ]
    assert [step.name for step in harness.available(steps)] == ["a", "c"]


def test_load_line_says_how_busy_the_machine_was() -> None:
    quiet = harness.load_line({"cpu_s": 2.0, "other_cpu_s": 0.0, "other_load": 0.01})
    assert quiet.startswith("machine load: other processes used 1 % of ") and "noisy" not in quiet
    assert "noisy" in harness.load_line({"cpu_s": 2.0, "other_cpu_s": 9.0, "other_load": 0.6})
    assert "unknown" in harness.load_line({"cpu_s": 2.0, "other_cpu_s": None, "other_load": None})


def test_the_qa_benchmark_times_functions_that_exist() -> None:
    from bench import qa as bench_qa

    steps = harness.available(bench_qa.STEPS)
    assert steps == list(bench_qa.STEPS)  # a renamed function would silently leave its step out
    assert {step.name for step in steps} == set(bench_qa.STEP_NAMES)
