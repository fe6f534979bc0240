"""Ingest benchmark: the whole ingest against a LibRaw-only floor on full-size DNGs.

    python -m bench.ingest [--files 24] [--workers 2] [--size 6000x4000] [--repeats 2] [--keep DIR]

What it does, in one run:

1. Builds ``--files`` full-size Bayer DNGs (``samples.dng.write_dng``, with a 1024 px embedded JPEG
   preview as a camera or DNG converter writes) from real photographs: ``skimage.data.astronaut()``
   re-framed with ``samples.shoot.render_portrait_frame``, plus, when the shared test data is
   there (``$LIKENESS_TESTDATA``, default ``<repo>/../shared/testdata``), the open-eyed portraits in
   ``faces/open`` that hold exactly one face, cropped and zoomed differently for every frame. Every
   frame has its own framing, exposure and white balance, so no two files share a hash; each
   rendered frame is checked to show exactly one face. The build runs in a process pool and is
   reported but not counted.
2. For each repeat, in turn (a, b, c, a, b, c ...):

   a. the floor: the same files decoded by rawpy alone,
      ``rawpy.imread(path).postprocess(**RAW_POSTPROCESS)``, in a 'spawn' process pool of the same
      size as the ingest's, timed from pool creation to the last result;
   b. the whole ingest: ``ingest.api.ingest_folder`` on the shoot folder, into a fresh SQLite
      database and local blob store (so nothing is skipped as already stored), with the sitters
      registered and released beforehand so every frame is accepted;
   c. a contact sheet: ``ingest.decode.quick_preview(path, 1024)`` for every file in a pool of the
      same size, timed from pool creation until the sheet (one PIL image of all previews) is written.

3. Prints a table (min and median of each figure, files/s, the ratio (b)/(a) against its 1.3 target,
   peak RSS per worker against 1500 MB, contact-sheet time) and, as the last line of stdout, the
   figures as JSON (also written to ``--json PATH``).

``--profile K`` then ingests K of the frames in this process (workers=0) with a timer (wall and
CPU) on each step, and prints where an ingest's time goes per frame, next to the rawpy-only decode
of the same frames and the start-up cost of a worker of either kind.

Every timed run also records its CPU time (the pool workers' and this process's) and how busy the
rest of the machine was meanwhile (from /proc/stat): on a shared machine the wall-clock figures
move with other people's load, the CPU ratio much less; the table flags runs that were disturbed.

Everything happens in a temporary folder that is removed afterwards, unless ``--keep DIR`` names
an empty (or new) folder to keep it all in.
"""

from __future__ import annotations

# Only the standard library at module level: spawned pool workers import this module again (as
# __mp_main__), and the floor workers must not pay for, or hold the memory of, the ingest's
# imports. Heavy modules are imported inside the functions that need them.
import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

from bench.harness import (
    ACTOR,
    QUIET_LOAD,
    SHOOT_NAME,
    CpuMeter,
    Step,
    StepClock,
    alternate,
    build_shoot,
    compare,
    cpu_model,
    frame_size,
    fresh_workbench,
    peak_rss_mib,
    process_pool,
    stats,
    verdict,
    wait_for_quiet,
)

RATIO_TARGET = 1.3  # ingest time / rawpy-only floor, with 2 workers
RSS_TARGET_MB = 1500.0  # peak resident memory per worker process
CONTACT_LONG_EDGE = 1024  # quick_preview size for the contact sheet
CONTACT_CELL = 256  # long edge of one picture on the sheet


# -------------------------------------------------------------------------------------------------
# Pool tasks (top level, so spawned workers can unpickle them)
# -------------------------------------------------------------------------------------------------


def _floor_task(path: str, postprocess: dict[str, Any]) -> tuple[tuple[int, ...], float]:
    """Decode one file with rawpy alone; return the output shape and this worker's peak RSS (MB)."""
    import rawpy

    with rawpy.imread(path) as raw:
        shape = tuple(raw.postprocess(**postprocess).shape)
    return shape, peak_rss_mib()


def _startup_task(module: str) -> float:
    import importlib

    importlib.import_module(module)
    return time.process_time()


def _preview_task(path: str, long_edge: int) -> bytes | None:
    from ingest.decode import quick_preview

    return quick_preview(Path(path), long_edge)


def open_workbench(root: Path, *, workers: int, sitters: list[str], shoot_date: dt.date):
    """A fresh workbench under ``root`` with every sitter holding an ai_training release signed on
    the shoot date, so that every frame is accepted."""
    return fresh_workbench(root, workers=workers, sitters=sitters, release_signed_on=shoot_date)


# -------------------------------------------------------------------------------------------------
# The three timed runs
# -------------------------------------------------------------------------------------------------


def run_floor(files: list[Path], workers: int) -> dict[str, Any]:
    """(a) rawpy alone, same pool size and start method as the ingest."""
    from ingest.decode import RAW_POSTPROCESS

    params = dict(RAW_POSTPROCESS)
    os.sync()
    meter = CpuMeter().start()
    pool = process_pool(workers)
    try:
        futures = [pool.submit(_floor_task, str(path), params) for path in files]
        shapes, peak = set(), 0.0
        for future in as_completed(futures):
            shape, rss = future.result()
            shapes.add(shape)
            peak = max(peak, rss)
        elapsed = meter.elapsed()
    finally:
        pool.shutdown(wait=True)  # the workers are reaped: their CPU time is counted
    return {"seconds": elapsed, "peak_worker_rss_mb": peak, "shapes": sorted(shapes), **meter.stop()}


def run_ingest(shoot: dict[str, Any], root: Path, workers: int, shoot_date: dt.date) -> dict[str, Any]:
    """(b) the whole ingest into a fresh database and blob store."""
    from ingest.api import ingest_folder

    workbench = open_workbench(root, workers=workers, sitters=shoot["sitters"], shoot_date=shoot_date)
    try:
        os.sync()
        meter = CpuMeter().start()
        summary = ingest_folder(workbench=workbench, path=shoot["path"], actor=ACTOR, workers=workers)
        elapsed = meter.elapsed()
        cpu = meter.stop()  # ingest_folder has shut its pool down: the workers are reaped
    finally:
        workbench.close()
    return {
        "seconds": elapsed,
        **cpu,
        "summary_elapsed_s": summary.elapsed_s,
        "peak_worker_rss_mb": summary.peak_worker_rss_mb,
        "files": summary.files,
        "accepted": len(summary.accepted),
        "quarantined": {reason: len(paths) for reason, paths in summary.quarantined.items()},
        "duplicates": len(summary.duplicates),
        "already_stored": len(summary.already_stored),
        "failed": [list(f) for f in summary.failed],
    }


def run_contact_sheet(files: list[Path], workers: int, sheet_path: Path) -> dict[str, Any]:
    """(c) previews of every file, in a pool, pasted into one sheet and written out."""
    import io

    from PIL import Image

    os.sync()
    meter = CpuMeter().start()
    pool = process_pool(workers)
    try:
        futures = [pool.submit(_preview_task, str(path), CONTACT_LONG_EDGE) for path in files]
        previews = [future.result() for future in futures]
        previews_s = meter.elapsed()
        columns = max(1, round(math.sqrt(len(previews) * 1.5)))
        rows = math.ceil(len(previews) / columns)
        gap = 8
        sheet_size = (columns * (CONTACT_CELL + gap) + gap, rows * (CONTACT_CELL + gap) + gap)
        sheet = Image.new("RGB", sheet_size, (32, 32, 32))
        missing = 0
        for index, data in enumerate(previews):
            if data is None:
                missing += 1
                continue
            with Image.open(io.BytesIO(data)) as picture:
                picture.thumbnail((CONTACT_CELL, CONTACT_CELL))
                x = gap + (index % columns) * (CONTACT_CELL + gap) + (CONTACT_CELL - picture.width) // 2
                y = gap + (index // columns) * (CONTACT_CELL + gap) + (CONTACT_CELL - picture.height) // 2
                sheet.paste(picture.convert("RGB"), (x, y))
        sheet.save(sheet_path, format="JPEG", quality=85)
        elapsed = meter.elapsed()
    finally:
        pool.shutdown(wait=True)
    return {**meter.stop(), "seconds": elapsed, "previews_s": previews_s, "missing": missing,
            "sheet": f"{sheet.width}x{sheet.height}"}


# -------------------------------------------------------------------------------------------------
# Report
# -------------------------------------------------------------------------------------------------


def summarise(args: argparse.Namespace, shoot: dict[str, Any], floors: list[dict], ingests: list[dict],
              sheets: list[dict]) -> dict[str, Any]:
    import rawpy

    files = len(shoot["files"])
    wall = compare([r["seconds"] for r in floors], [r["seconds"] for r in ingests])
    floor, ingest = wall["baseline"], wall["ours"]
    contact = stats([r["seconds"] for r in sheets])
    ratio_median, ratio_min = wall["ratio_of_medians"], wall["ratio_of_mins"]
    rss_floor = max(r["peak_worker_rss_mb"] for r in floors)
    rss_ingest = max(r["peak_worker_rss_mb"] for r in ingests)
    all_accepted = all(r["accepted"] == files and not r["failed"] for r in ingests)
    cpu = compare([r["cpu_s"] for r in floors], [r["cpu_s"] for r in ingests])
    floor_cpu, ingest_cpu = cpu["baseline"], cpu["ours"]
    loads = [r["other_load"] for r in floors + ingests + sheets if r.get("other_load") is not None]
    # Runs during which other processes left the machine (nearly) alone: the undisturbed figures.
    quiet_floor = [r["seconds"] for r in floors if (r.get("other_load") or 0.0) <= QUIET_LOAD]
    quiet_ingest = [r["seconds"] for r in ingests if (r.get("other_load") or 0.0) <= QUIET_LOAD]
    quiet_ratio = min(quiet_ingest) / min(quiet_floor) if quiet_floor and quiet_ingest else None
    return {
        "files": files,
        "workers": args.workers,
        "size": f"{args.size[0]}x{args.size[1]}",
        "repeats": args.repeats,
        "preview_size": args.preview_size,
        "set_bytes": shoot["bytes"],
        "build_s": shoot["seconds"],
        "sources": shoot["sources"],
        "skipped_sources": shoot["skipped_sources"],
        "floor_s": [r["seconds"] for r in floors],
        "ingest_s": [r["seconds"] for r in ingests],
        "contact_sheet_s": [r["seconds"] for r in sheets],
        "contact_previews_s": [r["previews_s"] for r in sheets],
        "floor": floor,
        "ingest": ingest,
        "contact_sheet": contact,
        "floor_files_per_s": {"best": files / floor["min"], "median": files / floor["median"]},
        "ingest_files_per_s": {"best": files / ingest["min"], "median": files / ingest["median"]},
        "ratio_of_medians": ratio_median,
        "ratio_of_mins": ratio_min,
        "ratio_target": RATIO_TARGET,
        "ratio_pass": ratio_median <= RATIO_TARGET,
        "floor_peak_worker_rss_mb": rss_floor,
        "ingest_peak_worker_rss_mb": rss_ingest,
        "rss_target_mb": RSS_TARGET_MB,
        "rss_pass": rss_ingest <= RSS_TARGET_MB,
        "contact_sheet_ratio_to_floor": contact["median"] / floor["median"],
        "floor_cpu_s": [r["cpu_s"] for r in floors],
        "ingest_cpu_s": [r["cpu_s"] for r in ingests],
        "floor_cpu": floor_cpu,
        "ingest_cpu": ingest_cpu,
        "cpu_ratio_of_medians": cpu["ratio_of_medians"],
        "quiet_runs": {"floor": len(quiet_floor), "ingest": len(quiet_ingest), "ratio_of_mins": quiet_ratio},
        "other_load": {
            "floor": [r.get("other_load") for r in floors],
            "ingest": [r.get("other_load") for r in ingests],
            "contact_sheet": [r.get("other_load") for r in sheets],
            "max": max(loads) if loads else None,
        },
        "ingest_runs": [{k: v for k, v in r.items() if k != "seconds"} for r in ingests],
        "all_accepted": all_accepted,
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rawpy": rawpy.__version__,
            "libraw": ".".join(str(v) for v in rawpy.libraw_version),
        },
    }


def print_report(console: Any, figures: dict[str, Any]) -> None:
    from rich.table import Table

    def judged(ok: bool) -> str:
        return f"[bold {'green' if ok else 'red'}]{verdict(ok)}[/]"

    def span(s: dict[str, float], fmt: str = "{:.1f}") -> str:
        return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"

    machine = figures["machine"]
    table = Table(
        title=f"Ingest benchmark — {figures['files']} DNGs of {figures['size']}, {figures['workers']} workers, "
              f"{figures['repeats']} repeats",
        caption=f"{machine['cpu']}, {machine['cpus']} CPUs; Python {machine['python']}, rawpy {machine['rawpy']} "
                f"(LibRaw {machine['libraw']})",
        show_lines=False,
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result", justify="center")
    floor, ingest, contact = figures["floor"], figures["ingest"], figures["contact_sheet"]
    table.add_row("files", str(figures["files"]), "", "")
    table.add_row("workers", str(figures["workers"]), "", "")
    table.add_row("(a) floor: rawpy only, s (min / median)", span(floor), "", "")
    table.add_row("(b) whole ingest, s (min / median)", span(ingest), "", "")
    fps_a, fps_b = figures["floor_files_per_s"], figures["ingest_files_per_s"]
    table.add_row("(a) floor, files/s (best / median)", f"{fps_a['best']:.2f} / {fps_a['median']:.2f}", "", "")
    table.add_row("(b) ingest, files/s (best / median)", f"{fps_b['best']:.2f} / {fps_b['median']:.2f}", "", "")
    table.add_row("ratio (b)/(a), of medians", f"{figures['ratio_of_medians']:.2f}",
                  f"≤ {figures['ratio_target']:.1f}", judged(figures["ratio_pass"]))
    table.add_row("ratio (b)/(a), of mins", f"{figures['ratio_of_mins']:.2f}",
                  f"≤ {figures['ratio_target']:.1f}", judged(figures["ratio_of_mins"] <= figures["ratio_target"]))
    table.add_row("peak RSS per worker, floor (a), MB", f"{figures['floor_peak_worker_rss_mb']:.0f}", "", "")
    table.add_row("peak RSS per worker, ingest (b), MB", f"{figures['ingest_peak_worker_rss_mb']:.0f}",
                  f"≤ {figures['rss_target_mb']:.0f}", judged(figures["rss_pass"]))
    table.add_row("contact sheet from embedded previews, s (min / median)", span(contact, "{:.2f}"), "", "")
    table.add_row("contact sheet / floor (medians)", f"{figures['contact_sheet_ratio_to_floor']:.3f}", "", "")
    table.add_row("(a) floor CPU s, workers + parent (min / median)", span(figures["floor_cpu"]), "", "")
    table.add_row("(b) ingest CPU s, workers + parent (min / median)", span(figures["ingest_cpu"]), "", "")
    table.add_row("CPU ratio (b)/(a), of medians", f"{figures['cpu_ratio_of_medians']:.2f}", "", "")
    quiet = figures["quiet_runs"]
    if quiet["ratio_of_mins"] is not None and quiet["floor"] + quiet["ingest"] < 2 * figures["repeats"]:
        table.add_row(f"ratio (b)/(a) of mins, quiet runs only ({quiet['floor']} floor, {quiet['ingest']} ingest)",
                      f"{quiet['ratio_of_mins']:.2f}", f"≤ {figures['ratio_target']:.1f}",
                      judged(quiet["ratio_of_mins"] <= figures["ratio_target"]))
    busiest = figures["other_load"]["max"]
    if busiest is not None:
        quiet = busiest <= QUIET_LOAD
        table.add_row("other processes' CPU during the runs, % of machine (max)", f"{100 * busiest:.0f} %",
                      f"≤ {100 * QUIET_LOAD:.0f} %", "quiet" if quiet else "[bold yellow]BUSY[/]")
    counts = [f"{r['accepted']}/{r['files']}" for r in figures["ingest_runs"]]
    accepted = f"{counts[0]} in every run" if len(set(counts)) == 1 else ", ".join(counts)
    table.add_row("frames accepted per ingest run", accepted, "all", judged(figures["all_accepted"]))
    console.print(table)
    if busiest is not None and busiest > QUIET_LOAD:
        console.print(f"[yellow]other processes used up to {100 * busiest:.0f} % of the machine during a timed run: "
                      "wall-clock figures are disturbed; the CPU ratio is the steadier one[/]")
    def runs(times: list[float], loads: list[float | None], fmt: str) -> str:
        return ", ".join(fmt.format(t) + ("" if load is None else f" ({100 * load:.0f} %)")
                         for t, load in zip(times, loads, strict=True))

    load = figures["other_load"]
    console.print("runs in order, s (other processes' share of the machine meanwhile):")
    console.print("  floor (a):     " + runs(figures["floor_s"], load["floor"], "{:.1f}"))
    console.print("  ingest (b):    " + runs(figures["ingest_s"], load["ingest"], "{:.1f}"))
    console.print("  contact sheet: " + runs(figures["contact_sheet_s"], load["contact_sheet"], "{:.2f}"))


# -------------------------------------------------------------------------------------------------
# Profile: where one ingest's time goes, step by step (--profile K)
# -------------------------------------------------------------------------------------------------


def _is_png_save(args: tuple, kwargs: dict) -> bool:
    """PIL's Image.save: only the crop's PNG encode."""
    fmt = kwargs.get("format") or (args[2] if len(args) > 2 else None)
    return str(fmt).upper() == "PNG"


# Each is wrapped with a timer for the profiled run only and restored afterwards.
PROFILE_STEPS: tuple[Step, ...] = (
    Step("hash (SHA-256 of the file)", "ingest.coordinator", "_hash"),
    Step("decode_frame", "ingest.frame", "decode_frame"),
    Step("TIFF extent check (tifffile)", "ingest.decode", "_check_tiff_extent", "decode_frame"),
    Step("EXIF: exifread", "ingest.decode", "read_exif", "decode_frame"),
    Step("EXIF: LibRaw fill", "ingest.decode", "fill_from_libraw", "decode_frame"),
    Step("embedded preview: extract + JPEG decode", "ingest.decode", "_embedded_preview", "decode_frame"),
    Step("store original (copy + hash check + fsync)", "likeness.blobstore:BlobStore", "put_file"),
    Step("preview (resize + JPEG)", "ingest.frame", "preview_of"),
    Step("find_faces", "ingest.frame", "find_faces"),
    Step("MediaPipe import + graph build", "faces.detect", "_graph", "find_faces"),
    Step("align + PNG encode + store crop", "ingest.frame", "_store_face"),
    Step("ffhq_quad + align_face (warp)", "ingest.frame", "align_face", "align + PNG encode + store crop"),
    Step("PNG encode of the crop", "PIL.Image:Image", "save", "align + PNG encode + store crop", when=_is_png_save),
    Step("store crop", "likeness.blobstore:BlobStore", "put_bytes", "align + PNG encode + store crop"),
    Step("DB: batch rows (_write_batch)", "ingest.coordinator", "_write_batch"),
    Step("DB: shoot row + known hashes", "ingest.coordinator", "_upsert_shoot"),
    Step("DB: shoot row + known hashes", "ingest.coordinator", "_known_hashes"),
    # A context manager: its begin and commit are timed, not the body.
    Step("DB: transactions (begin + commit)", "likeness.db:Database", "unit_of_work", context=True),
)


def _worker_startup(module: str) -> dict[str, float]:
    """Wall time from creating a one-worker spawn pool to having ``module`` imported in it."""
    started = time.perf_counter()
    with process_pool(1) as pool:
        cpu = pool.submit(_startup_task, module).result()
        wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": cpu}


def run_profile(shoot: dict[str, Any], root: Path, count: int, shoot_date: dt.date) -> dict[str, Any]:
    """Ingest ``count`` frames in this process (workers=0) with a timer on every step; also decode
    the same frames with rawpy alone, and time a worker's start-up for each."""
    from ingest.api import ingest_folder
    from ingest.decode import RAW_POSTPROCESS

    files = shoot["files"][:count]
    folder = root / "shoot"
    for path in files:
        target = folder / path.relative_to(shoot["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    shutil.copyfile(shoot["path"] / "shoot.toml", folder / "shoot.toml")

    startup = {"floor": _worker_startup("rawpy"), "ingest": _worker_startup("ingest.frame")}

    os.sync()
    floor_wall, floor_cpu = 0.0, 0.0
    for path in files:
        wall, cpu = time.perf_counter(), time.process_time()
        _floor_task(str(path), dict(RAW_POSTPROCESS))
        floor_wall += time.perf_counter() - wall
        floor_cpu += time.process_time() - cpu

    workbench = open_workbench(root / "data", workers=0, sitters=shoot["sitters"], shoot_date=shoot_date)
    clock = StepClock()
    restore = clock.instrument(PROFILE_STEPS)
    try:
        os.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = ingest_folder(workbench=workbench, path=folder, actor=ACTOR, workers=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        restore()
        workbench.close()

    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for timer in PROFILE_STEPS:
        if timer.name in seen:
            continue
        seen.add(timer.name)
        step_wall, step_cpu = clock.seconds(timer.name)
        steps.append({"step": timer.name, "wall_s": step_wall, "cpu_s": step_cpu, "parent": timer.parent})
    by_name = {s["step"]: s for s in steps}
    # What decode_frame spends outside its timed parts is LibRaw: open, unpack and postprocess.
    decode = by_name["decode_frame"]
    parts = [s for s in steps if s["parent"] == "decode_frame"]
    libraw = {
        "step": "LibRaw open + unpack + postprocess (the rest)",
        "wall_s": decode["wall_s"] - sum(s["wall_s"] for s in parts),
        "cpu_s": decode["cpu_s"] - sum(s["cpu_s"] for s in parts),
        "parent": "decode_frame",
    }
    steps.insert(steps.index(parts[-1]) + 1, libraw)
    # The MediaPipe import and graph build are paid once per worker process, not per frame.
    graph = by_name["MediaPipe import + graph build"]
    find = by_name["find_faces"]
    find["wall_s"] -= graph["wall_s"]
    find["cpu_s"] -= graph["cpu_s"]
    graph["parent"], graph["once"] = None, True
    top = [s for s in steps if s["parent"] is None]
    steps.append({"step": "everything else", "wall_s": max(0.0, wall - sum(s["wall_s"] for s in top)),
                  "cpu_s": max(0.0, cpu - sum(s["cpu_s"] for s in top)), "parent": None})
    return {
        "frames": len(files),
        "accepted": len(summary.accepted),
        "wall_s": wall,
        "cpu_s": cpu,
        "floor_wall_s": floor_wall,
        "floor_cpu_s": floor_cpu,
        "worker_startup": startup,
        "steps": steps,
    }



def print_profile(console: Any, profile: dict[str, Any]) -> None:
    from rich.table import Table

    frames = profile["frames"]
    floor_cpu = profile["floor_cpu_s"] / frames
    table = Table(
        title=f"Where an ingest's time goes — {frames} frames ingested in this process (workers=0), per frame",
        caption=(
            f"rawpy-only decode of the same frames: {floor_cpu:.2f} CPU s, {profile['floor_wall_s'] / frames:.2f} s "
            f"wall per frame; whole ingest: {profile['cpu_s'] / frames:.2f} CPU s, {profile['wall_s'] / frames:.2f} s "
            f"wall per frame ({profile['accepted']}/{frames} accepted). CPU s: all threads of the process "
            f"(LibRaw decodes with OpenMP threads)."
        ),
    )
    table.add_column("step")
    table.add_column("CPU s", justify="right")
    table.add_column("wall s", justify="right")
    table.add_column("CPU × rawpy decode", justify="right")
    for step in profile["steps"]:
        label = ("   " + step["step"]) if step["parent"] else step["step"]
        if step.get("once"):
            continue
        cpu, wall = step["cpu_s"] / frames, step["wall_s"] / frames
        table.add_row(label, f"{cpu:.3f}", f"{wall:.3f}", f"{cpu / floor_cpu:.3f}")
    table.add_section()
    for step in profile["steps"]:
        if step.get("once"):
            table.add_row(f"{step['step']} (once per worker)", f"{step['cpu_s']:.2f}", f"{step['wall_s']:.2f}", "")
    startup = profile["worker_startup"]
    table.add_row("worker start-up, floor: spawn + import rawpy (once per worker)",
                  f"{startup['floor']['cpu_s']:.2f}", f"{startup['floor']['wall_s']:.2f}", "")
    table.add_row("worker start-up, ingest: spawn + import ingest.frame (once per worker)",
                  f"{startup['ingest']['cpu_s']:.2f}", f"{startup['ingest']['wall_s']:.2f}", "")
    console.print(table)


# -------------------------------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Time the whole ingest against a rawpy-only floor on full-size DNGs rendered from real "
                    "photographs.",
    )
    parser.add_argument("--files", type=_positive, default=24, help="DNGs to build and ingest (default 24)")
    parser.add_argument("--workers", type=_positive, default=2, help="worker processes for every pool (default 2)")
    parser.add_argument("--size", type=frame_size, default=(6000, 4000), help="sensor WIDTHxHEIGHT (default 6000x4000)")
    parser.add_argument("--repeats", type=_positive, default=2, help="floor/ingest/contact-sheet rounds (default 2)")
    parser.add_argument("--preview-size", type=_positive, default=1024,
                        help="long edge of the JPEG preview embedded in each DNG (default 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed for framings, exposures and white balances")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR (new or empty) and keep everything")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each timed run, wait up to S seconds for other processes to leave the "
                             f"machine idle (under {100 * QUIET_LOAD:.0f} %%); for shared machines")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="afterwards, time the ingest of K frames in this process step by step")
    return parser.parse_args(argv)


def _load_note(run: dict[str, Any]) -> str:
    load = run.get("other_load")
    return "" if load is None else f"  (other processes: {100 * load:.0f} % of the machine)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    log = Console(stderr=True, highlight=False)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.keep:
        workspace = args.keep.resolve()
        if workspace.exists() and any(workspace.iterdir()):
            log.print(f"[red]--keep {workspace}: the folder is not empty[/]")
            return 2
        workspace.mkdir(parents=True, exist_ok=True)
    else:
        workspace = Path(tempfile.mkdtemp(prefix="likeness-bench-"))

    # MediaPipe's C++ logging (info lines on every graph build) only clutters the progress output;
    # the workers inherit the setting.
    os.environ.setdefault("GLOG_minloglevel", "2")
    # Import the ingest before anything is timed, as a running ingest would have.
    import ingest.api  # noqa: F401
    import ingest.decode  # noqa: F401

    shoot_date = dt.date.today()
    try:
        say(f"workspace {workspace}")
        say("building the shoot (not timed) …")
        shoot = build_shoot(workspace / SHOOT_NAME, files=args.files, size=args.size, preview_size=args.preview_size,
                            seed=args.seed, shoot_date=shoot_date, say=say)
        say(f"  built {len(shoot['files'])} files, {shoot['bytes'] / 1e9:.2f} GB, in {shoot['seconds']:.1f} s")

        def settle() -> None:
            if args.wait_quiet > 0:
                wait_for_quiet(args.wait_quiet, say)

        def floor_side(repeat: int) -> dict[str, Any]:
            floor = run_floor(shoot["files"], args.workers)
            say(f"repeat {repeat}: (a) floor   {floor['seconds']:7.1f} s  CPU {floor['cpu_s']:6.1f} s  "
                f"peak RSS/worker {floor['peak_worker_rss_mb']:.0f} MB{_load_note(floor)}")
            return floor

        def ingest_side(repeat: int) -> dict[str, Any]:
            root = workspace / f"ingest-{repeat}"
            ingest_run = run_ingest(shoot, root, args.workers, shoot_date)
            say(f"repeat {repeat}: (b) ingest  {ingest_run['seconds']:7.1f} s  CPU {ingest_run['cpu_s']:6.1f} s  "
                f"peak RSS/worker {ingest_run['peak_worker_rss_mb']:.0f} MB  "
                f"accepted {ingest_run['accepted']}/{ingest_run['files']}{_load_note(ingest_run)}"
                + (f"  quarantined {ingest_run['quarantined']}" if ingest_run["quarantined"] else "")
                + (f"  failed {ingest_run['failed']}" if ingest_run["failed"] else ""))
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)  # 1 GB+ of blobs per run
            return ingest_run

        def sheet_side(repeat: int) -> dict[str, Any]:
            sheet = run_contact_sheet(shoot["files"], args.workers, workspace / f"contact-sheet-{repeat}.jpg")
            say(f"repeat {repeat}: (c) contact sheet {sheet['seconds']:.2f} s ({sheet['sheet']}, previews back "
                f"after {sheet['previews_s']:.2f} s){_load_note(sheet)}")
            return sheet

        floors, ingests, sheets = alternate(range(1, args.repeats + 1), [floor_side, ingest_side, sheet_side],
                                            before=settle)
        figures = summarise(args, shoot, floors, ingests, sheets)
        print_report(out, figures)
        if args.profile > 0:
            say(f"profiling the ingest of {min(args.profile, len(shoot['files']))} frames in-process …")
            settle()
            profile = run_profile(shoot, workspace / "profile", min(args.profile, len(shoot["files"])), shoot_date)
            figures["profile"] = profile
            print_profile(out, profile)
    finally:
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(figures, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
