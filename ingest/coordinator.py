"""The ingest coordinator: hashes and processes frames in a process pool and writes results in
batches, one transaction each, so a killed run loses at most one batch of work (redone next time)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.orm import Session, selectinload

from ingest import gate
from ingest.decode import EMPTY_REASON
from ingest.frame import FrameFailure, FrameJob, FrameResult, process_frame
from ingest.shoot_folder import FrameFile, ShootFolder, SkippedEntry, read_shoot_folder
from likeness import audit
from likeness.blobstore import BlobStore, sha256_bytes, sha256_file
from likeness.db import conflict_insert
from likeness.errors import IntegrityProblem, InvalidInput, NotFound
from likeness.models import Face, IngestFailure, Person, Shoot, Shot, utcnow
from likeness.progress import ProgressFn
from likeness.workbench import Workbench

log = logging.getLogger(__name__)


EMPTY_SHA256 = sha256_bytes(b"")
BATCH_SECONDS = 2.0  # also commit at least this often, so a slow frame never holds back a batch
ORPHAN_POLL_S = 1.0  # how often a pool worker checks that the process that started it still lives


@dataclass
class IngestSummary:
    shoot: str
    shoot_id: int
    files: int = 0
    accepted: list[str] = field(default_factory=list)
    quarantined: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, path or shot it repeats)
    already_stored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, kind, reason)
    skipped: list[SkippedEntry] = field(default_factory=list)  # entries of the folder not ingested, with why
    peak_worker_rss_mb: float = 0.0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class _InlineExecutor(Executor):
    """Runs work in the calling process (workers=0): for tests, debugging and small uploads."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


def make_executor(workers: int, *, nice: int = 0) -> Executor:
    """``workers`` processes (0: inline, in this process); ``nice`` lowers their CPU priority."""
    if workers == 0:
        return _InlineExecutor()
    # spawn: workers start clean (no inherited database connections or threads).
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
        initargs=(nice, os.getpid()),
    )


def _worker_init(nice: int = 0, parent: int | None = None) -> None:
    # Parallelism comes from the pool: OpenCV's own thread pool in every worker would only
    # oversubscribe the cores that the other workers are decoding on.
    import cv2

    cv2.setNumThreads(1)
    if nice:
        os.nice(nice)
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once the process that started it is gone. Killed outright (SIGKILL, the
    OOM killer) the parent cannot stop its pool, and the pool's pipes stay open in the worker
    itself: it would wait for work for ever, its face models in memory."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os._exit(1)


def _hash(path: Path) -> tuple[str | None, str | None]:
    try:
        return sha256_file(path), None
    except OSError as exc:
        return None, exc.strerror or str(exc)


def ingest_folder(
    *, workbench: Workbench, path: Path, actor: str, workers: int | None = None, progress: ProgressFn | None = None
) -> IngestSummary:
    """Ingest every frame of a shoot folder; safe to re-run and to resume after a crash."""
    started = time.monotonic()
    folder = read_shoot_folder(Path(path))
    gate.check_shoot_date(folder.manifest.date, source=str(folder.root / "shoot.toml"))
    settings = workbench.settings
    workers = settings.workers if workers is None else workers
    shoot_id = store_shoot(workbench=workbench, folder=folder, actor=actor)
    summary = IngestSummary(shoot=folder.name, shoot_id=shoot_id, files=len(folder.frames), skipped=list(folder.skipped))
    done = 0

    def tick(relative_path: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, summary.files, relative_path)

    with make_executor(workers) as pool:
        hashes = list(pool.map(_hash, [f.path for f in folder.frames], chunksize=4))
        jobs = _plan_jobs(workbench, folder, hashes, summary, tick)
        pending = [pool.submit(process_frame, job) for job in jobs]
        by_path = {frame.relative_path: frame for frame in folder.frames}
        try:
            for batch in _batches(as_completed(pending), settings.batch_size):
                with workbench.db.unit_of_work() as session:
                    _write_batch(session, shoot_id, by_path, batch, summary, actor, workbench.blobs)
                for outcome in batch:
                    summary.peak_worker_rss_mb = max(summary.peak_worker_rss_mb, outcome.peak_rss_mb)
                    tick(outcome.job.relative_path)
        except BaseException:
            for future in pending:
                future.cancel()
            wait_futures(pending, timeout=0)
            raise
    summary.elapsed_s = time.monotonic() - started
    log.info("ingested %s: %d files in %.1f s", folder.name, summary.files, summary.elapsed_s)
    return summary


# -- frames one at a time or a few at once (the capture watcher): the batch ingest's own steps --


def store_shoot(*, workbench: Workbench, folder: ShootFolder, actor: str) -> int:
    """Store the shoot that ``folder``'s manifest describes (insert, or update and add sitters),
    in its own transaction, as ``ingest_folder`` does first; the shoot's id."""
    with workbench.db.unit_of_work() as session:
        return _upsert_shoot(session=session, folder=folder, actor=actor)


def plan_frames(
    *, workbench: Workbench, folder: ShootFolder, hashes: list[tuple[str | None, str | None]], summary: IngestSummary
) -> list[FrameJob]:
    """The decode jobs for ``folder.frames``, given each frame's ``(sha256, None)`` or ``(None,
    error)``: as in ``ingest_folder``, content stored already or repeated is only counted in
    ``summary``, unreadable and empty files are recorded as failures, and a stored shot missing
    blobs is decoded again to restore them. Run the jobs with ``process_frame`` (``make_executor``)."""
    return _plan_jobs(workbench, folder, hashes, summary, lambda _relative: None)


def write_frames(
    *, workbench: Workbench, shoot_id: int, frames: Iterable[FrameFile], outcomes: list[FrameResult | FrameFailure],
    summary: IngestSummary, actor: str,
) -> None:
    """Store the workers' outcomes for ``frames`` in one transaction, through the consent gate,
    exactly as a batch of ``ingest_folder`` is stored."""
    by_path = {frame.relative_path: frame for frame in frames}
    with workbench.db.unit_of_work() as session:
        _write_batch(session, shoot_id, by_path, outcomes, summary, actor, workbench.blobs)


def shoot_id_by_name(*, session: Session, name: str | None) -> int | None:
    """The stored shoot's id; None for no name, NotFound for an unknown one."""
    if name is None:
        return None
    shoot_id = session.scalar(select(Shoot.id).where(Shoot.name == name))
    if shoot_id is None:
        raise NotFound(f"no shoot named {name}", hint="`likeness ingest PATH` stores one")
    return shoot_id


def _upsert_shoot(*, session: Session, folder: ShootFolder, actor: str) -> int:
    manifest = folder.manifest
    # Insert-or-get by name: another ingest of the same shoot may be inserting it right now.
    # The INSERT also takes SQLite's write lock, and FOR UPDATE PostgreSQL's row lock, so the
    # sitters below accumulate without one upload overwriting another's.
    created = session.scalar(
        conflict_insert(session, Shoot)
        .values(name=folder.name, shoot_date=manifest.date)
        .on_conflict_do_nothing(index_elements=[Shoot.name])
        .returning(Shoot.id)
    )
    shoot = session.scalar(
        select(Shoot).where(Shoot.name == folder.name).with_for_update().execution_options(populate_existing=True)
    )
    if shoot is None:  # deleted between the two statements
        raise IntegrityProblem(f"shoot {folder.name} disappeared while it was being stored", hint="run the ingest again")
    if created is not None:
        action = "shoot.create"
    elif shoot.shoot_date != manifest.date:
        raise InvalidInput(
            f"shoot {folder.name} is already stored with date {shoot.shoot_date}, but {folder.root / 'shoot.toml'} says {manifest.date}",
            hint="give this shoot another name in shoot.toml",
        )
    else:
        action = "shoot.update"
    shoot.studio, shoot.photographer, shoot.camera = manifest.studio, manifest.photographer, manifest.camera
    shoot.lighting_preset, shoot.reference_frame = manifest.lighting_preset, manifest.reference_frame
    # A shoot may arrive in several uploads (one per sitter): sitters accumulate.
    shoot.sitters = sorted(set(shoot.sitters or []) | set(manifest.sitters))
    shoot.plan, shoot.source_path = manifest.plan or shoot.plan, str(folder.root.resolve())
    session.flush()
    audit.record(session=session, actor=actor, action=action, subject_type="shoot", subject_id=shoot.id, source=shoot.source_path)
    return shoot.id


def _plan_jobs(
    workbench: Workbench,
    folder: ShootFolder,
    hashes: list[tuple[str | None, str | None]],
    summary: IngestSummary,
    tick: Callable[[str], None],
) -> list[FrameJob]:
    """Skip what is stored already or repeated in this folder; record unreadable and empty files.
    A stored shot whose original, preview or crops went missing is decoded again to restore them."""
    settings = workbench.settings
    known = _known_hashes(workbench, [sha for sha, _ in hashes if sha])
    incomplete = _missing_blobs(workbench, known)
    first_seen: dict[str, str] = {}
    jobs = []
    unusable: list[tuple[FrameFile, str | None, str, str]] = []  # (frame, sha, kind, reason)

    def job(frame: FrameFile, sha: str, *, restore: bool = False) -> FrameJob:
        return FrameJob(
            path=frame.path, relative_path=frame.relative_path, sha256=sha,
            blob_url=workbench.blobs.url, align_size=settings.align_size,
            preview_size=settings.preview_size, max_pixels=settings.max_pixels, restore=restore,
        )

    for frame, (sha, error) in zip(folder.frames, hashes):
        if sha is None:
            unusable.append((frame, None, "unreadable", error or "unreadable"))
            continue
        if sha == EMPTY_SHA256:  # before dedupe: two empty files are two failures, not a copy
            unusable.append((frame, sha, "empty", EMPTY_REASON))
            continue
        if sha in incomplete and sha not in first_seen:
            first_seen[sha] = frame.relative_path
            jobs.append(job(frame, sha, restore=True))
            continue
        if sha in known:
            summary.already_stored.append(frame.relative_path)
        elif sha in first_seen:
            summary.duplicates.append((frame.relative_path, first_seen[sha]))
        else:
            first_seen[sha] = frame.relative_path
            jobs.append(job(frame, sha))
            continue
        tick(frame.relative_path)
    if unusable:
        with workbench.db.unit_of_work() as session:
            for frame, sha, kind, reason in unusable:
                _record_failure(session, summary.shoot_id, frame.relative_path, sha, kind, reason, summary)
    for frame, *_ in unusable:
        tick(frame.relative_path)
    return jobs


def _known_hashes(workbench: Workbench, hashes: list[str]) -> set[str]:
    known: set[str] = set()
    with workbench.db.unit_of_work() as session:
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            known.update(session.scalars(select(Shot.sha256).where(Shot.sha256.in_(chunk))))
    return known


def _missing_blobs(workbench: Workbench, shas: set[str]) -> set[str]:
    """The stored shots among ``shas`` whose original, preview or a face crop is missing from the
    blob store, or whose preview or crop reference was cleared (by `likeness doctor --repair`)."""
    needed: dict[str, set[str | None]] = defaultdict(set)
    ordered = sorted(shas)
    with workbench.db.unit_of_work() as session:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            for sha, preview in session.execute(select(Shot.sha256, Shot.preview_sha256).where(Shot.sha256.in_(chunk))):
                needed[sha].update((sha, preview))
            crops = select(Shot.sha256, Face.crop_sha256).join(Face, Face.shot_id == Shot.id).where(Shot.sha256.in_(chunk))
            for sha, crop in session.execute(crops):
                needed[sha].add(crop)
    present: dict[str, bool] = {}

    def stored(blob: str | None) -> bool:
        if blob is None:
            return False
        if blob not in present:
            present[blob] = workbench.blobs.exists(blob)
        return present[blob]

    missing = {sha for sha, blobs in needed.items() if not all(stored(blob) for blob in blobs)}
    if missing:
        log.info("%d stored shots miss blobs; decoding them again to restore", len(missing))
    return missing


def _batches(outcomes: Iterable[Future], size: int) -> Iterator[list[FrameResult | FrameFailure]]:
    batch: list[FrameResult | FrameFailure] = []
    last = time.monotonic()
    for future in outcomes:
        batch.append(future.result())
        if len(batch) >= size or time.monotonic() - last >= BATCH_SECONDS:
            yield batch
            batch, last = [], time.monotonic()
    if batch:
        yield batch


def _write_batch(
    session: Session,
    shoot_id: int,
    frames: dict[str, FrameFile],
    batch: list[FrameResult | FrameFailure],
    summary: IngestSummary,
    actor: str,
    blobs: BlobStore,
) -> None:
    shoot = session.get(Shoot, shoot_id)
    if shoot is None:  # deleted while this ingest ran
        raise IntegrityProblem(f"shoot #{shoot_id} disappeared during its ingest", hint="run the ingest again")
    codes = {frames[o.job.relative_path].sitter_code for o in batch} - {None}
    people = {
        p.code: p
        for p in session.scalars(
            select(Person).where(Person.code.in_(codes)).options(selectinload(Person.releases), selectinload(Person.personal))
        )
    }
    for outcome in batch:
        relative = outcome.job.relative_path
        if outcome.job.restore:
            _restore_blobs(session, outcome, summary, actor, blobs)
            continue
        if isinstance(outcome, FrameFailure):
            _record_failure(session, shoot_id, relative, outcome.job.sha256, outcome.kind, outcome.reason, summary)
            continue
        sitter = frames[relative].sitter_code
        person = people.get(sitter) if sitter else None
        verdict = gate.classify(
            sitter_code=sitter, person=person, face_count=len(outcome.faces), shoot_date=shoot.shoot_date,
            capture_date=gate.capture_date(outcome.metadata.captured_at, shoot.shoot_date),
        )
        if not _insert_shot(session, _shot_row(outcome, shoot, sitter, person, verdict)):
            summary.already_stored.append(relative)  # another ingest stored it meanwhile
            continue
        session.execute(
            delete(IngestFailure).where(IngestFailure.shoot_id == shoot_id, IngestFailure.relative_path == relative)
        )
        if verdict.reason:
            summary.quarantined[verdict.reason].append(relative)
        else:
            summary.accepted.append(relative)
    session.flush()


def _insert_shot(session: Session, shot: Shot) -> bool:
    """Insert the shot and its faces unless a shot with its SHA-256 is stored already: ON CONFLICT
    DO NOTHING, so an ingest of the same files running at the same time never fails on the
    unique key; it finds the shot taken (False) and moves on."""
    if shot in session:
        session.expunge(shot)
    shot_id = session.scalar(
        conflict_insert(session, Shot)
        .values(**_column_values(shot))
        .on_conflict_do_nothing(index_elements=[Shot.sha256])
        .returning(Shot.id)
    )
    if shot_id is None:
        return False
    faces = [{**_column_values(face), "shot_id": shot_id} for face in shot.faces]
    if faces:
        session.execute(insert(Face), faces)
    return True


def _column_values(row: object) -> dict[str, Any]:
    """The column values set on a new ORM object (unset ones get their column defaults)."""
    state = inspect(row)
    return {prop.key: state.dict[prop.key] for prop in state.mapper.column_attrs if prop.key in state.dict}


def _restore_blobs(
    session: Session, outcome: FrameResult | FrameFailure, summary: IngestSummary, actor: str, blobs: BlobStore
) -> None:
    """Point a stored shot's missing preview and crops at the blobs decoded again from its original
    (which the worker stored again too, if it was gone). Present blobs and rows stay as they are."""
    relative = outcome.job.relative_path
    summary.already_stored.append(relative)
    if isinstance(outcome, FrameFailure):
        log.warning("cannot restore the missing blobs of %s: %s (%s)", relative, outcome.reason, outcome.kind)
        return
    shot = session.scalar(select(Shot).where(Shot.sha256 == outcome.job.sha256).options(selectinload(Shot.faces)))
    if shot is None:  # removed meanwhile: the next ingest stores it anew
        return

    def missing(sha: str | None) -> bool:
        return sha is None or not blobs.exists(sha)

    restored = []
    if missing(shot.preview_sha256):
        shot.preview_sha256, shot.preview_source = outcome.preview_sha256, outcome.preview_source
        restored.append("preview")
    decoded = dict(enumerate(outcome.faces))
    for face in shot.faces:
        record = decoded.get(face.face_index)
        if record is not None and missing(face.crop_sha256):
            face.crop_sha256, face.crop_size = record.crop_sha256, record.crop_size
            restored.append(f"crop {face.face_index}")
    if len(decoded) != len(shot.faces):
        log.warning("%s: %d faces found again, %d stored; crops restored by face index", relative, len(decoded), len(shot.faces))
    audit.record(
        session=session, actor=actor, action="shot.blobs_restored", subject_type="shot", subject_id=shot.id,
        restored=restored, source=relative,
    )
    log.info("restored %s of %s", ", ".join(restored) or "the original", relative)


def _shot_row(result: FrameResult, shoot: Shoot, sitter: str | None, person: Person | None, verdict: gate.ConsentVerdict) -> Shot:
    meta = result.metadata
    shot = Shot(
        sha256=result.job.sha256, shoot_id=shoot.id, person_id=person.id if person else None, sitter_code=sitter,
        relative_path=result.job.relative_path, file_format=result.file_format, file_size=result.file_size,
        width=result.width, height=result.height, orientation=result.orientation,
        make=meta.make, model=meta.model, lens=meta.lens, serial=meta.serial, iso=meta.iso,
        shutter_s=meta.shutter_s, aperture=meta.aperture, focal_length_mm=meta.focal_length_mm,
        captured_at=meta.captured_at, capture_date=gate.capture_date(meta.captured_at, shoot.shoot_date), white_balance=result.white_balance,
        exif=meta.tags, preview_sha256=result.preview_sha256, preview_source=result.preview_source,
        face_count=len(result.faces), status=verdict.status, reason=verdict.reason,
        reason_detail=result.not_human_detail if verdict.reason == "no_face" and result.not_human_detail else verdict.detail,
    )
    for index, face in enumerate(result.faces):
        finding = face.finding
        shot.faces.append(
            Face(
                face_index=index, box=finding["box"], score=finding["score"], landmarks=finding["landmarks"],
                yaw=finding.get("yaw"), pitch=finding.get("pitch"), roll=finding.get("roll"),
                ear_right=finding.get("ear_right"), ear_left=finding.get("ear_left"),
                iris_right=finding.get("iris_right"), iris_left=finding.get("iris_left"),
                quad=face.quad, crop_sha256=face.crop_sha256, crop_size=face.crop_size,
            )
        )
    return shot


def _record_failure(
    session: Session, shoot_id: int, relative: str, sha: str | None, kind: str, reason: str, summary: IngestSummary
) -> None:
    # One row per path, upserted: a concurrent ingest of the same folder records the same failure.
    session.execute(
        conflict_insert(session, IngestFailure)
        .values(shoot_id=shoot_id, relative_path=relative, sha256=sha, kind=kind, reason=reason)
        .on_conflict_do_update(
            index_elements=[IngestFailure.shoot_id, IngestFailure.relative_path],
            set_={"sha256": sha, "kind": kind, "reason": reason, "last_seen_at": utcnow()},
        )
    )
    summary.failed.append((relative, kind, reason))
