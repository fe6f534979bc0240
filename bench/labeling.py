"""Push 10,000 tasks and pull 10,000 annotations through our labeling stage, against a bare
label-studio-sdk bulk import and export of the same data, in the same run, on our own local
Label Studio.

Rounds alternate (bare first, then ours) so that drift in the machine's load hits both. Push:
ours (`labeling.api.push`: consent check, intent rows, import, confirmation, prediction labels)
against `projects.import_tasks` of the same task JSON in the same batch size. Pull: ours
(`labeling.api.pull` into an empty database: the project's export applied page by page into
Label rows with history) against one `exports.download_sync` JSON export of the same project. It
also prints the push's time per batch across the run, so a sync that slows down as it grows shows.

    python -m bench.labeling [--tasks 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data as skimage_data
from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

from bench.harness import compare, explicit_settings, fresh_workbench, timed
from labeling import api, server
from labeling.client import LabelStudioClient
from labeling.label_config import build_label_config
from labeling.predictions import model_version, predict
from labeling.push import task_payload
from labeling.taxonomy import TAXONOMY
from likeness.config import Settings
from likeness.models import Face, LabelProject, LabelTask, Person, Release, Shoot, Shot
from likeness.progress import ProgressFn
from likeness.workbench import Workbench

SHOOT_DATE = dt.date(2026, 11, 20)
VALUES = [("eyes", "open"), ("age_band", "adult"), ("usable", "yes")]


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workbench(root: Path, server_settings: Settings, connection: server.Connection) -> Workbench:
    blob_url = server_settings.blob_url
    if blob_url is None:
        raise ValueError("the server's settings name no blob store")
    return fresh_workbench(root / "data", workers=0, blob_url=blob_url,
                           label_studio_url=connection.url, label_studio_token=connection.token,
                           label_studio_files_root=server.files_root(server_settings))


def _required_id(value: int | None, what: str) -> int:
    """An id the SDK types as optional but Label Studio always returns."""
    if value is None:
        raise RuntimeError(f"Label Studio returned no id for {what}")
    return value


def _fill(wb: Workbench, n: int) -> None:
    """n accepted shots of one released sitter, one face each, all showing the same real crop."""
    out = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()[:256, 96:352]).save(out, format="PNG")
    crop = wb.blobs.put_bytes(out.getvalue())
    document = wb.blobs.put_bytes(b"%PDF-1.4 release P0001")
    with wb.db.unit_of_work() as session:
        person = Person(code="P0001")
        shoot = Shoot(name="bench", shoot_date=SHOOT_DATE)
        session.add_all([person, shoot])
        session.flush()
        session.add(Release(person_id=person.id, document_sha256=document, document_name="P0001.pdf",
                            document_type="application/pdf", signed_on=SHOOT_DATE,
                            scopes=["ai_training"]))
        shots = [dict(sha256=hashlib.sha256(f"bench {i}".encode()).hexdigest(), shoot_id=shoot.id,
                      person_id=person.id, sitter_code="P0001", relative_path=f"P0001/{i:05d}.dng",
                      file_format="dng", file_size=1, width=256, height=256, capture_date=SHOOT_DATE,
                      status="accepted", preview_sha256=crop) for i in range(n)]
        session.execute(insert(Shot), shots)
        ids = session.scalars(select(Shot.id).order_by(Shot.id)).all()
        session.execute(insert(Face), [dict(shot_id=s, face_index=0, box=[0, 0, 256, 256], score=0.99, landmarks=[],
                                            quad=[], crop_sha256=crop, crop_size=256, yaw=3.0, pitch=1.0, roll=0.0,
                                            qa={"eyes": {"state": "open", "confidence": 0.9}}) for s in ids])


def _bare_tasks(wb: Workbench, files_root: Path) -> list[dict]:
    """The same task JSON our push sends (images, ids, predictions), built once up front."""
    version = model_version()
    with wb.db.unit_of_work() as session:
        faces = session.scalars(select(Face).options(selectinload(Face.shot).selectinload(Shot.shoot))).all()
        return [task_payload(face, wb.blobs, files_root, predict(face), version) for face in faces]


def _annotated_tasks(n: int, user_id: int, files: str) -> list[dict]:
    result = [{"from_name": a, "to_name": "crop", "type": "choices", "value": {"choices": [v]}} for a, v in VALUES]
    return [{"data": {"face_id": i, "crop": files, "preview": files},
             "annotations": [{"result": result, "completed_by": user_id}]} for i in range(n)]


def _bare_push(ls: LabelStudioClient, project: int, tasks: list[dict], batch: int) -> None:
    for start in range(0, len(tasks), batch):
        # The SDK types `request` as its ImportApiRequest models; it sends plain task dicts as they are.
        ls.sdk.projects.import_tasks(project, request=tasks[start:start + batch], return_task_ids=True)  # type: ignore[arg-type]


def _bare_export(ls: LabelStudioClient, project: int) -> int:
    return len(json.loads(b"".join(ls.sdk.projects.exports.download_sync(project, export_type="JSON", download_all_tasks=True))))


def _mark_progress(marks: list[float], t0: float) -> ProgressFn:
    """A progress callback that records the time since `t0` at each call."""
    def mark(done: int, total: int, name: str) -> None:
        marks.append(time.perf_counter() - t0)
    return mark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-labeling-"))
    blob_root = home / "files" / "blobs"
    blob_root.mkdir(parents=True)
    venv = Path(os.environ.get("LIKENESS_LABEL_STUDIO_VENV", ".venv-labelstudio"))
    server_settings = explicit_settings(data_dir=home / "server", blob_url=str(blob_root),
                                        label_studio_port=_free_port(), label_studio_venv=venv)
    print(f"starting Label Studio in {home} …", flush=True)
    connection = server.start(server_settings, str(blob_root))
    config = build_label_config(TAXONOMY)
    try:
        # Wall times: the server's work (another process) is part of both sides.
        push_pairs, pull_pairs, per_thousand = [], [], []
        for round_index in range(args.rounds):
            wb = _workbench(home / f"ours-{round_index}", server_settings, connection)
            _fill(wb, args.tasks)
            ls = api.client(workbench=wb)
            files_root = server.files_root(server_settings)
            # Push: bare SDK import of the same task JSON, then ours.
            tasks = _bare_tasks(wb, files_root)
            bare_project = _required_id(ls.sdk.projects.create(title=f"bare push {round_index}", label_config=config).id,
                                        "the bare push project")
            bare_s, _ = timed(functools.partial(_bare_push, ls, bare_project, tasks, args.batch))
            api.setup(workbench=wb)
            marks: list[float] = []
            t0 = time.perf_counter()
            ours_s, pushed = timed(functools.partial(api.push, workbench=wb, progress=_mark_progress(marks, t0)))
            assert pushed.pushed == args.tasks, pushed
            per_thousand.append(("push", [b - a for a, b in zip([0.0, *marks], marks)]))
            push_pairs.append((bare_s, ours_s))
            print(f"round {round_index + 1} push: bare {bare_s:.2f} s, ours {ours_s:.2f} s, ratio {ours_s / bare_s:.2f}", flush=True)

            # Pull: a project holding n annotated tasks; our database knows them as pushed tasks.
            user_id = _required_id(ls.sdk.users.whoami().id, "the signed-in user")
            pull_project = _required_id(ls.sdk.projects.create(title=f"pull {round_index}", label_config=config).id,
                                        "the pull project")
            files = tasks[0]["data"]["crop"]
            for start in range(0, args.tasks, args.batch):
                # As in _bare_push: plain task dicts where the SDK's types name its request models.
                ls.sdk.projects.import_tasks(pull_project,
                                             request=_annotated_tasks(min(args.batch, args.tasks - start), user_id, files))  # type: ignore[arg-type]
            reader = _workbench(home / f"pull-{round_index}", server_settings, connection)
            _fill(reader, args.tasks)
            remote_ids = [_required_id(t.id, "a task")
                          for t in ls.sdk.tasks.list(project=pull_project, page_size=5000, fields="task_only")]
            with reader.db.unit_of_work() as session:
                project = LabelProject(server_url=ls.url, ls_project_id=pull_project, title="pull", config_sha256="-")
                session.add(project)
                session.flush()
                faces = session.scalars(select(Face.id).order_by(Face.id)).all()
                session.execute(insert(LabelTask), [dict(project_id=project.id, face_id=f, ls_task_id=t)
                                                     for f, t in zip(faces, sorted(remote_ids))])
            bare_s, exported = timed(functools.partial(_bare_export, ls, pull_project))
            assert exported == args.tasks
            ours_s, pulled = timed(functools.partial(api.pull, workbench=reader))
            assert pulled.added == args.tasks * len(VALUES), pulled
            pull_pairs.append((bare_s, ours_s))
            print(f"round {round_index + 1} pull: bare export {bare_s:.2f} s, ours {ours_s:.2f} s, "
                  f"ratio {ours_s / bare_s:.2f}", flush=True)
            wb.close()
            reader.close()

        def summary(name: str, pairs: list[tuple[float, float]]) -> None:
            figures = compare([b for b, _ in pairs], [o for _, o in pairs])
            bare, ours = figures["baseline"]["min"], figures["ours"]["min"]
            print(f"{name}: bare {bare:.2f} s ({args.tasks / bare:.0f} tasks/s), ours {ours:.2f} s "
                  f"({args.tasks / ours:.0f} tasks/s), ratio (best of {len(pairs)}) {figures['ratio_of_mins']:.2f} "
                  "[target <= 1.2]")
        print()
        summary("push", push_pairs)
        summary("pull", pull_pairs)
        for name, steps in per_thousand[-1:]:
            if len(steps) >= 2:
                print(f"{name}: first batch {steps[0]:.2f} s, last batch {steps[-1]:.2f} s "
                      f"(last/first {steps[-1] / steps[0]:.2f}; a sync that stalls as it grows shows here)")
    finally:
        server.stop(server_settings)


if __name__ == "__main__":
    main()
