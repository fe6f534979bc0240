"""`likeness train` (prepare, run, stop, status, checkpoints) and `likeness generate`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from likeness.cli import DefaultCommandGroup, console, err_console, open_workbench, sub_app
from likeness.errors import InvalidInput
from likeness.workbench import Workbench
from model_registry.aliases import ALIAS_PATTERN, PRODUCTION
from model_registry.aliases import resolve as resolve_checkpoint
from model_registry.export import ExportResult, export_generated
from model_registry.signing import load_identity
from training import api
from training.config import AUGMENT_MODES, RUN_DEFAULTS, TrainConfig, TrainProgress
from training.dataset import prepare_dataset
from training.generate import MAX_SEEDS_PER_CALL
from training.generated_scores import describe as describe_scores
from training.networks import NetworkConfig
from training.snapshots import api as snapshots_api

LOG_EVERY_S = 10.0      # without a terminal, live progress lines are printed at most this often


class _GenerateGroup(DefaultCommandGroup):
    """`likeness generate [CKPT] [OPTIONS]` means `likeness generate faces ...`; without CKPT the
    checkpoint is the registry's `production` alias."""

    default_command = "faces"

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] != "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


train_app = sub_app("Build training datasets, train StyleGAN2-ADA runs and follow them.")
generate_app = sub_app("Generate faces from a checkpoint (`likeness generate [CKPT]`; default: the production alias).",
                       cls=_GenerateGroup, no_args_is_help=False)


@train_app.command("prepare")
def train_prepare(
    src: Path = typer.Argument(..., help="Folder of square face crops (PNG, JPEG...)."),
    dest: Path = typer.Argument(..., help="New dataset folder, or a .zip file."),
    resolution: int = typer.Option(..., help="Image size in pixels (a power of two)."),
) -> None:
    """Resize face crops into a training dataset (PNG images, written atomically)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"prepare {dest}", total=None)
        prepared = prepare_dataset(src, dest, resolution=resolution,
                                   progress=lambda done, total, _path: bar.update(task, completed=done, total=total))
    console.print(f"dataset {prepared.dest}: {prepared.count} images at {prepared.resolution}px, "
                  f"fingerprint {prepared.fingerprint[:12]}")


@train_app.command("run")
def train_run(
    dataset: Path | None = typer.Argument(None, help="External data: a dataset folder or .zip (with --external)."),
    snapshot: str | None = typer.Option(None, "--dataset", help="Dataset snapshot to train on (id or hash prefix; "
                                                                "exported on demand)."),
    external: bool = typer.Option(False, "--external", help="DATASET is data from outside the studio: the run "
                                                           "and its checkpoints have no consent lineage."),
    out: Path | None = typer.Option(None, help="Run folder (default: runs/<name> in the data directory)."),
    name: str | None = typer.Option(None, help="Run name (default: the run folder's name)."),
    kimg: float = typer.Option(RUN_DEFAULTS.kimg, help="Train for this many thousand images in all."),
    batch: int = typer.Option(RUN_DEFAULTS.batch, help="Images per step."),
    snapshot_kimg: float = typer.Option(RUN_DEFAULTS.snapshot_kimg,
                                        help="Snapshot (checkpoint) every this many thousand images."),
    tick_kimg: float = typer.Option(RUN_DEFAULTS.tick_kimg, help="Progress report every this many thousand images."),
    network: Path | None = typer.Option(None, help="NetworkConfig JSON file (default: the preset for the resolution)."),
    net: list[str] = typer.Option([], help="Preset override KEY=VALUE, e.g. channel_max=256 (repeatable)."),
    augment: str = typer.Option("ada", help=f"Augmentation: {', '.join(AUGMENT_MODES)}."),
    mirror: bool = typer.Option(False, "--mirror", help="Add mirrored copies of the images."),
    seed: int = typer.Option(0, help="Seed of the networks, the data order and every step."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    workers: int = typer.Option(1, help="Data loader processes."),
    resume: str | None = typer.Option(None, help="'auto' (latest snapshot of the run), a checkpoint id or a snapshot file."),
    estimate: bool = typer.Option(True, "--estimate/--no-estimate",
                                  help="Estimate the time first (from this machine's last matching run, "
                                       "else a benchmark of a few steps)."),
) -> None:
    """Train a StyleGAN2-ADA run, recording progress and checkpoints in the database.

    The first lines name the device and the estimated time; without a terminal (a log file)
    progress is printed as lines, one per tick and at most every LOG_EVERY_S seconds between."""
    with open_workbench() as wb:
        dataset, snapshot_id, default_name = _training_data(wb, dataset, snapshot, external)
        run_dir = out or api.run_folder(wb, name or default_name)
        config = TrainConfig(
            data=str(dataset), out_dir=str(run_dir), network=_network_file(network),
            network_overrides=_overrides(net), batch=batch, total_kimg=kimg, snapshot_kimg=snapshot_kimg,
            kimg_per_tick=tick_kimg, augment=augment, xflip=mirror, seed=seed, device=device, workers=workers,
        )
        console.print(f"device: {api.describe_device(device)}")
        if estimate:
            found = api.estimate_run(wb, config, done_kimg=_done_kimg(wb, name or run_dir.name))
            if found is not None:
                console.print(found.line())
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"train {name or run_dir.name}", total=kimg, stats="starting")
            printed = [-float("inf")]

            def show(report: TrainProgress) -> None:
                losses = " ".join(f"{k} {v:.3f}" for k, v in report.losses.items())
                eta = "" if report.eta_s is None else f"  ETA {api.format_duration(report.eta_s)}"
                stats = (f"kimg {report.kimg:.3f}/{report.total_kimg:g}  {report.sec_per_kimg:.1f} s/kimg  "
                         f"{report.img_per_s:.1f} img/s  {losses}  p {report.augment_p:.3f}{eta}")
                bar.update(task, completed=report.kimg, stats=stats)
                if not console.is_terminal and (not report.live or time.monotonic() - printed[0] >= LOG_EVERY_S):
                    printed[0] = time.monotonic()
                    console.print(("progress " if report.live else f"tick {report.tick} ") + stats)

            try:
                run_id = api.start_run(wb, config, name=name, resume=_resume(wb, resume, run_dir), progress=show,
                                       snapshot_id=snapshot_id, external=external)
            except KeyboardInterrupt:
                data = f"--dataset {snapshot}" if snapshot else f"{dataset}" + (" --external" if external else "")
                again = f"likeness train run {data} --out {run_dir}" + (f" --name {name}" if name else "")
                console.print(f"stopped; continue with `{again} --resume auto`")
                raise typer.Exit(130) from None
        summary = api.run_summary(wb, run_id)
    console.print(f"run {summary.name}: {summary.status} at kimg {summary.kimg:g}, {summary.checkpoints} checkpoints "
                  f"(latest #{summary.latest_checkpoint_id}) in {summary.run_dir}")


@train_app.command("stop")
def train_stop(name: str = typer.Argument(..., help="The run to stop (by name).")) -> None:
    """Ask a running run to stop: it finishes its step, writes a snapshot and ends as stopped."""
    with open_workbench() as wb:
        run_id = api.request_stop(wb, name)
    console.print(f"asked run {name} (#{run_id}) to stop; it snapshots at its next step and ends as stopped "
                  "(`likeness train status` shows when)")


@train_app.command("status")
def train_status() -> None:
    """List training runs: status, progress, augmentation and their latest checkpoint."""
    with open_workbench() as wb:
        summaries = api.run_summaries(wb)
    if not summaries:
        console.print("no training runs yet; start one with `likeness train run DATASET`")
        return
    table = Table("run", "status", "kimg", "p", "checkpoints", "latest", "updated", "error")
    for s in summaries:
        table.add_row(s.name, s.status, f"{s.kimg:g}/{s.total_kimg:g}", f"{s.augment_p:.3f}", str(s.checkpoints),
                      f"#{s.latest_checkpoint_id}" if s.latest_checkpoint_id else "-",
                      s.updated_at.strftime("%Y-%m-%d %H:%M"), (s.error or "")[:80])
    console.print(table)


@train_app.command("checkpoints")
def train_checkpoints(run: str | None = typer.Argument(None, help="Only this run (by name).")) -> None:
    """List checkpoints with the ids that `likeness generate` takes."""
    with open_workbench() as wb:
        checkpoints = api.checkpoints(wb, run_name=run)
    table = Table("#", "run", "kimg", "aliases", "tainted", "losses")
    for c in checkpoints:
        losses = " ".join(f"{k} {v:.3f}" for k, v in c.metrics.get("losses", {}).items())
        table.add_row(str(c.id), c.run_name, f"{c.kimg:g}", ", ".join(c.aliases) or "-", "yes" if c.tainted else "no",
                      losses)
    console.print(table)


@generate_app.command("faces")
def generate_faces(
    checkpoint: str = typer.Argument(PRODUCTION, help="Checkpoint id, a registry alias (default: production), "
                                                       "or a snapshot file of a recorded run."),
    n: int | None = typer.Option(None, "--n", help="Generate seeds 0..n-1 (default 8), or with --mix this many faces "
                                                   "(default: the spec's size)."),
    seeds: str | None = typer.Option(None, help="Seeds as a range and/or list: 0-7, or 1,5,9, or 0-3,10."),
    psi: float = typer.Option(0.7, help="Truncation towards the mean face (1: none)."),
    label: str | None = typer.Option(None, help="Attribute values (age_band=senior,expression=smile), a class index, "
                                                "or label values as a JSON list."),
    mix: Path | None = typer.Option(None, "--mix", help="A snapshot spec (TOML): spread the faces over label values "
                                                        "to meet its [quotas] and [[joint]] shares."),
    noise_mode: str = typer.Option("const", help="const, random (seeded) or none."),
    review: bool = typer.Option(True, "--review/--no-review", help="Queue the images for review."),
    score: bool = typer.Option(True, "--score/--no-score", help="Score each new face with the checkpoint's "
                                                               "discriminator and its realism against the run's images."),
    checks: bool = typer.Option(True, "--checks/--no-checks", help="Run the automatic image checks on each new face "
                                "and let the learned filter accept or reject those it is sure of; the rest are left "
                                "to reviewers."),
    out: Path | None = typer.Option(None, help="Also write the PNGs to this folder as seed<SEED>.png (unsigned)."),
    export: Path | None = typer.Option(None, help="Export the PNGs to this folder with Content Credentials "
                                                  "(C2PA, signed) as seed<SEED>-<SHA12>.png."),
) -> None:
    """Generate faces from a checkpoint: one reproducible PNG per seed, checked, queued for review.

    Batches are committed as they are rendered, then scored, checked and decided by the learned
    filter: run the same command again after a kill and it continues where it stopped. Without
    a terminal progress is printed as lines."""
    if mix is not None and (seeds is not None or label is not None):
        raise typer.BadParameter("--mix chooses the labels and seeds itself", param_hint="--mix")
    chosen = (_seeds(seeds) if seeds is not None else _seed_count_ok(range(8 if n is None else n), f"--n {n}", "--n"))
    with open_workbench() as wb:
        if export is not None:
            load_identity(wb.settings)   # an unusable signing certificate stops us before rendering
        ref = _checkpoint_ref(wb, checkpoint)
        plan = None
        if mix is not None:
            if not isinstance(ref, int):
                raise typer.BadParameter("--mix needs a checkpoint id (its snapshot knows the labels)", param_hint="--mix")
            plan = api.plan_mix(wb, ref, mix, n=n)
            _seed_count_ok(range(plan.total), f"--mix {mix}", "--mix")
            _report_mix(plan)
        # Loaded before rendering: a missing dataset or extractor stops us first.
        batch_checks = api.GenerationChecks(wb, ref, score=score, checks=checks)

        total = plan.total if plan is not None else len(chosen)
        with _generation_bar(total) as show:
            options: dict[str, Any] = dict(psi=psi, noise_mode=noise_mode, queue_for_review=review, progress=show,
                                           batch_checks=batch_checks)
            if plan is not None:
                ids = api.generate_mix(wb, ref, plan, **options)  # type: ignore[arg-type]
            else:
                ids = api.generate(wb, ref, seeds=chosen, label=_label(wb, ref, label), **options)
        if out is not None:
            api.write_generated(wb, ids, out)
        exported = _export(wb, ids, export) if export is not None else None
    queued = ", queued for review" if review else ""
    named = f"{ref} ({checkpoint})" if isinstance(ref, int) and str(ref) != checkpoint else str(checkpoint)
    console.print(f"{len(ids)} images from checkpoint {named} at psi {psi:g}{queued}"
                  + (f"; written to {out}" if out is not None else ""))
    for line in batch_checks.lines():
        console.print(line, markup=False, highlight=False)
    if exported is not None:
        _report_export(exported)


@generate_app.command("score")
def generate_score(
    checkpoint: int | None = typer.Option(None, "--checkpoint", help="Only this checkpoint's images (by id)."),
) -> None:
    """Score generated images that lack the discriminator or realism check (untainted checkpoints)."""
    with open_workbench() as wb:
        ids = api.unscored_generated(wb, checkpoint_id=checkpoint)
        if not ids:
            console.print("every generated image has both scores")
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("score", total=len(ids))
            summary = api.score_generated(wb, ids, progress=lambda done, total: bar.update(task, completed=done))
    console.print(describe_scores(summary))


@contextlib.contextmanager
def _generation_bar(total: int) -> Iterator[Callable[[api.GenerationProgress], None]]:
    """A rich bar with images/s on a terminal; plain lines at most every LOG_EVERY_S otherwise."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("generate", total=total, rate="")
        printed = [-float("inf")]

        def show(report: api.GenerationProgress) -> None:
            rate = f"{report.images_per_s:.2f} img/s" if report.rendered else "skipping existing"
            bar.update(task, completed=report.done, rate=rate)
            if not console.is_terminal and (report.done == total or time.monotonic() - printed[0] >= LOG_EVERY_S):
                printed[0] = time.monotonic()
                console.print(f"progress {report.done}/{total} seeds, {report.rendered} rendered now, {rate}")

        yield show


def _report_mix(plan: api.Mix) -> None:
    missed = [q for q in plan.quotas if not q.met]
    console.print(f"mix: {plan.total} faces over {len(plan.cells)} label cells ({plan.status}); "
                  + ("every quota met" if not missed else "outside their bands: "
                     + ", ".join(f"{q.key} {q.allocated} (want {q.low}..{q.high})" for q in missed)),
                  markup=False, highlight=False)


def _export(wb: Workbench, ids: list[int], folder: Path) -> ExportResult:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"sign {folder}", total=len(ids))
        return export_generated(wb, ids, folder, progress=lambda done, total: bar.update(task, completed=done))


def _report_export(result: ExportResult) -> None:
    anchor = f" (trust anchor {result.trust_anchor})" if result.trust_anchor else ""
    console.print(f"exported {len(result.written)} images with Content Credentials to {result.folder}, "
                  f"signed by {result.signer}{anchor}; check one with `likeness provenance verify FILE`",
                  markup=False, highlight=False, soft_wrap=True)
    for item in result.withheld:
        err_console.print(f"withheld image #{item.image_id} (seed {item.seed}): {item.reason}",
                          markup=False, highlight=False)
    if result.withheld:
        raise typer.Exit(1)


# ---- Parsing. ----------------------------------------------------------------------------------

def _seeds(text: str) -> list[int]:
    """The seeds of a list like 0-3,10; counted from the ranges before any list is built, so a
    range beyond MAX_SEEDS_PER_CALL is refused without taking memory."""
    ranges: list[range] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            ranges.append(range(int(first), int(last or first) + 1))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a seed list like 0-7 or 1,5,9", param_hint="--seeds") from None
    _seed_count_ok(range(sum(len(r) for r in ranges)), repr(text), "--seeds")
    chosen = [seed for r in ranges for seed in r]
    if not chosen:
        raise typer.BadParameter(f"{text!r} names no seeds", param_hint="--seeds")
    return chosen


def _seed_count_ok(seeds: range, what: str, param: str) -> range:
    if len(seeds) > MAX_SEEDS_PER_CALL:
        raise typer.BadParameter(f"{what} names {len(seeds):,} seeds; one call takes at most {MAX_SEEDS_PER_CALL:,} "
                                 "(MAX_SEEDS_PER_CALL in training/generate.py): split the range over several calls",
                                 param_hint=param)
    return seeds


def _label(wb: Workbench, checkpoint: int | Path, text: str | None) -> int | list[float] | None:
    """A class index, a JSON vector, or attribute values (age_band=senior,expression=smile) encoded
    the way the checkpoint's dataset snapshot encodes its labels."""
    if text is None:
        return None
    if "=" in text:
        if not isinstance(checkpoint, int):
            raise typer.BadParameter("attribute labels need a checkpoint id (its snapshot knows the encoding)",
                                     param_hint="--label")
        return snapshots_api.label_for_checkpoint(wb, checkpoint, text)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, int) or (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)):
        return value
    raise typer.BadParameter(f"{text!r} is neither a class index, a JSON list of numbers nor attribute=value pairs",
                             param_hint="--label")


def _checkpoint_ref(wb: Workbench, text: str) -> int | Path:
    """A checkpoint id (17 or #17), a registry alias (production), or a snapshot file."""
    digits = text.removeprefix("#")
    if digits.isdigit():
        return int(digits)
    if ALIAS_PATTERN.fullmatch(text) and not Path(text).exists():
        with wb.db.unit_of_work() as session:
            return resolve_checkpoint(session=session, ref=text)
    return Path(text)


def _training_data(wb: Workbench, dataset: Path | None, snapshot: str | None, external: bool) -> tuple[Path, int | None, str]:
    """(dataset path, snapshot id, default run name) of `train run`'s data."""
    if snapshot is not None:
        if dataset is not None or external:
            raise InvalidInput("give either --dataset SNAPSHOT or an --external DATASET, not both")
        exported = snapshots_api.training_export(wb, snapshot)
        return exported.path, exported.snapshot_id, exported.run_name
    if dataset is None:
        raise InvalidInput("no training data given", hint="train on a snapshot with --dataset ID, "
                                                          "or on outside data with DATASET --external")
    return dataset, None, dataset.stem


def _done_kimg(wb: Workbench, name: str) -> float:
    """How far the run called `name` got already (0 for a new run)."""
    return next((s.kimg for s in api.run_summaries(wb) if s.name == name), 0.0)


def _resume(wb: Workbench, text: str | None, run_dir: Path) -> api.Resume:
    if text is None or text == "auto":
        return text  # type: ignore[return-value]
    if text.isdigit():
        return api.checkpoint_file(wb, int(text), scratch=run_dir / "resume")
    return Path(text)


def _network_file(path: Path | None) -> NetworkConfig | None:
    if path is None:
        return None
    try:
        return NetworkConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"--network {path}: not a NetworkConfig JSON file ({exc})") from exc


def _overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--net")
        try:
            overrides[key.strip()] = json.loads(value)
        except ValueError:
            overrides[key.strip()] = value
    return overrides
