"""Labeling against a real Label Studio: setup, push, annotations, pull, agreement, faults."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from sqlalchemy import select

from labeling import api, served, server
from labeling.client import LabelStudioClient
from labeling.predictions import model_version
from labeling.pull import _as_utc
from labeling.taxonomy import TAXONOMY, Choice, Taxonomy
from likeness.errors import ConfigError, ServiceUnavailable
from likeness.models import Face, Label, LabelProject, LabelState, LabelTask, Release, Shot, ShotStatus
from likeness.workbench import Workbench
from tests.labeling.support import LabelStudioServer, add_faces, annotate, choice, labeler, setup_and_push, task_ids


def _current(wb: Workbench, **where: object) -> list[tuple]:
    with wb.db.unit_of_work() as session:
        query = select(Label.face_id, Label.attribute, Label.value, Label.annotator).where(
            Label.source == "annotation", Label.state == LabelState.current, Label.attribute != "")
        for column, value in where.items():
            query = query.where(getattr(Label, column) == value)
        return sorted(session.execute(query).all())


# -- the server ---------------------------------------------------------------------------------

def test_serve_creates_admin_and_token_without_a_click_and_is_idempotent(label_studio: LabelStudioServer) -> None:
    path = server.connection_path(label_studio.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = label_studio.connection
    assert connection.token and connection.admin_password
    me = label_studio.client().sdk.users.whoami()
    assert me.email == server.ADMIN_EMAIL
    again = server.start(label_studio.settings, str(label_studio.blob_root))
    assert again.pid == connection.pid
    state = server.status(label_studio.settings)
    assert (state.source, state.running, state.pid) == ("served", True, connection.pid)


def test_the_admin_password_is_on_no_command_line(label_studio: LabelStudioServer) -> None:
    password = label_studio.connection.admin_password
    assert password
    seen = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        seen.append(text)
        assert password not in text, f"{cmdline} shows the Label Studio admin password"
    assert any("label-studio" in text and "start" in text for text in seen)  # the server was among them


def test_serve_restarts_a_server_that_serves_another_document_root(label_studio: LabelStudioServer) -> None:
    before = label_studio.connection
    assert before.files_root == str(server.files_root(label_studio.settings))
    server.write_connection(label_studio.settings, dataclasses.replace(before, files_root=None))  # as before the served folder
    after = server.start(label_studio.settings, str(label_studio.blob_root))
    assert after.pid != before.pid and server.healthy(after.url)
    assert (after.token, after.files_root) == (before.token, before.files_root)


def test_a_files_root_overlapping_the_blob_store_is_refused(label_studio: LabelStudioServer) -> None:
    with pytest.raises(ConfigError, match="overlaps the blob store"):
        server.start(label_studio.settings.model_copy(update={"label_studio_files_root": label_studio.blob_root.parent}),
                     str(label_studio.blob_root))


def test_a_rejected_token_is_one_clear_error(label_studio: LabelStudioServer) -> None:
    bad = LabelStudioClient(dataclasses.replace(label_studio.connection, token="not-a-token"), attempts=2, backoff_s=0.01)
    with pytest.raises(ConfigError, match="rejected our token"):
        bad.call("list projects", lambda: list(bad.sdk.projects.list()))


def test_an_unreachable_server_is_retried_then_one_clear_error() -> None:
    gone = LabelStudioClient(server.Connection(url="http://127.0.0.1:9", token="x"), attempts=3, backoff_s=0.01)
    with pytest.raises(ServiceUnavailable, match="after 3 tries"):
        gone.call("list projects", lambda: list(gone.sdk.projects.list()))


# -- project, push ------------------------------------------------------------------------------

def test_push_sends_released_accepted_faces_once_with_predictions(lwb: Workbench, tmp_path: Path,
                                                                  label_studio: LabelStudioServer) -> None:
    released = add_faces(lwb, tmp_path, n=3, eyes="closed", yaw=30.0)
    add_faces(lwb, tmp_path, n=2, sitter="P0002", release=False, seed=1)
    add_faces(lwb, tmp_path, n=1, sitter="P0001", status="quarantined", seed=2)
    setup = api.setup(workbench=lwb)
    assert setup.created

    first = api.push(workbench=lwb)
    assert first.pushed == 3
    assert first.withheld == {"no valid release": 2, "shot quarantined": 1}
    assert set(task_ids(lwb)) == set(released)
    again = api.push(workbench=lwb)
    assert (again.pushed, again.already) == (0, 3)

    ls = api.client(workbench=lwb)
    tasks = list(ls.sdk.tasks.list(project=setup.ls_project_id, fields="all"))
    assert sorted(cast(dict[str, Any], t.data)["face_id"] for t in tasks) == released
    prediction = cast(list[Any], tasks[0].predictions)[0]
    prediction = prediction if isinstance(prediction, dict) else prediction.dict()
    assert prediction["model_version"] == model_version()
    values = {r["from_name"]: r["value"]["choices"][0] for r in prediction["result"]}
    assert values == {"eyes": "closed", "head_pose": "three_quarter_right"}

    # The image is served from our blob store in place, byte for byte.
    crop_url = cast(dict[str, Any], tasks[0].data)["crop"]
    assert lwb.settings.label_studio_token is not None
    response = requests.get(ls.url + crop_url, headers={"Authorization": f"Bearer {_access_token(ls, lwb.settings.label_studio_token)}"}, timeout=30)
    assert response.status_code == 200
    with lwb.db.unit_of_work() as session:
        crop_sha = session.scalar(select(Face.crop_sha256).where(Face.id == cast(dict[str, Any], tasks[0].data)["face_id"]))
        stored = session.execute(select(Label.attribute, Label.value, Label.source).where(
            Label.face_id == cast(dict[str, Any], tasks[0].data)["face_id"])).all()
    assert set(stored) == {("eyes", "closed", "prediction"), ("head_pose", "three_quarter_right", "prediction")}
    assert crop_sha is not None
    assert response.content == lwb.blobs.read_bytes(crop_sha)


def _fetch(ls: LabelStudioClient, wb: Workbench, url: str) -> requests.Response:
    assert wb.settings.label_studio_token is not None
    return requests.get(ls.url + url, timeout=30,
                        headers={"Authorization": f"Bearer {_access_token(ls, wb.settings.label_studio_token)}"})


def test_label_studio_serves_only_images_of_pushed_faces_of_accepted_frames(lwb: Workbench, tmp_path: Path,
                                                                           label_studio: LabelStudioServer) -> None:
    pushed = add_faces(lwb, tmp_path, n=2)
    held = add_faces(lwb, tmp_path, n=1, status="quarantined", seed=2)
    api.setup(workbench=lwb)
    api.push(workbench=lwb)
    ls = api.client(workbench=lwb)
    with lwb.db.unit_of_work() as session:
        document = session.scalars(select(Release.document_sha256)).one()
        crops = dict(session.execute(select(Face.id, Face.crop_sha256)).all())
        originals = dict(session.execute(select(Face.id, Shot.sha256).join(Shot)).all())
    files_root = server.files_root(lwb.settings)
    storages = ls.sdk.import_storage.local.list(project=_ls_project(lwb))
    assert [s.path for s in storages] == [str(served.storage_path(files_root))]

    crop = crops[pushed[0]]
    assert crop is not None
    response = _fetch(ls, lwb, served.file_url(crop))
    assert response.status_code == 200 and response.content == lwb.blobs.read_bytes(crop)
    assert os.path.samefile(served.storage_path(files_root) / crop, lwb.blobs.local_path(crop))  # a hard link, not a copy
    # A release document, a quarantined frame's RAW original and crop: not by hash in the served
    # folder, not by their path in the blob store (the old document root held it).
    for secret in (document, originals[held[0]], crops[held[0]]):
        assert secret is not None
        blob_path = os.path.relpath(lwb.blobs.local_path(secret), label_studio.blob_root.parent)
        for url in (served.file_url(secret), f"{served.URL_PREFIX}{blob_path}"):
            assert _fetch(ls, lwb, url).status_code in (403, 404), url
    assert sorted(p.name for p in served.storage_path(files_root).iterdir() if p.name in set(crops.values())) == \
        sorted({crops[f] or "" for f in pushed})

    # A pushed frame that is quarantined later: its images are withdrawn at the next push.
    with lwb.db.unit_of_work() as session:
        face = session.get(Face, pushed[1])
        assert face is not None
        face.shot.status = ShotStatus.quarantined
    again = api.push(workbench=lwb)
    assert again.withdrawn == 1
    withdrawn = crops[pushed[1]]
    assert withdrawn is not None
    assert _fetch(ls, lwb, served.file_url(withdrawn)).status_code == 404
    assert _fetch(ls, lwb, served.file_url(crop)).status_code == 200


def test_setup_and_push_move_an_older_project_onto_the_served_folder(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=2)
    ls, tasks = setup_and_push(lwb)
    project = _ls_project(lwb)
    local = ls.sdk.import_storage.local
    # An older project: its storage elsewhere (the blob store then), a second one, blob-store URLs.
    elsewhere = server.files_root(lwb.settings) / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (storage,) = local.list(project=project)
    assert storage.id is not None
    local.update(storage.id, path=str(elsewhere))
    local.create(project=project, path=str(elsewhere), use_blob_urls=True, title="another")
    old = {"crop": f"{served.URL_PREFIX}blobs/old", "preview": f"{served.URL_PREFIX}blobs/old"}
    data = cast(dict[str, Any], ls.sdk.tasks.get(str(tasks[faces[0]])).data)
    ls.sdk.tasks.update(str(tasks[faces[0]]), data=data | old)

    api.setup(workbench=lwb)
    assert [s.path for s in local.list(project=project)] == [str(served.storage_path(server.files_root(lwb.settings)))]
    result = api.push(workbench=lwb)
    assert (result.pushed, result.migrated) == (0, 1)
    with lwb.db.unit_of_work() as session:
        crop = session.scalar(select(Face.crop_sha256).where(Face.id == faces[0]))
    assert crop is not None
    moved = cast(dict[str, Any], ls.sdk.tasks.get(str(tasks[faces[0]])).data)
    assert (moved["crop"], moved["preview"], moved["face_id"]) == (served.file_url(crop), served.file_url(crop), faces[0])
    assert _fetch(ls, lwb, moved["crop"]).status_code == 200
    assert api.push(workbench=lwb).migrated == 0


def _ls_project(wb: Workbench) -> int:
    with wb.db.unit_of_work() as session:
        return session.scalars(select(LabelProject)).one().ls_project_id


def _access_token(ls: LabelStudioClient, refresh: str) -> str:
    response = requests.post(f"{ls.url}/api/token/refresh/", json={"refresh": refresh}, timeout=30)
    response.raise_for_status()
    return response.json()["access"]


def test_an_interrupted_push_is_adopted_not_doubled(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=4)
    setup = api.setup(workbench=lwb)
    ls = api.client(workbench=lwb)
    # A push that imported its batch but died before confirming: intent rows without task ids.
    with lwb.db.unit_of_work() as session:
        project = session.scalars(select(LabelProject)).one()
        session.add_all(LabelTask(project_id=project.id, face_id=f) for f in faces[:2])
    ls.sdk.projects.import_tasks(setup.ls_project_id, request=[{"data": {"face_id": f, "crop": "x", "preview": "x"}} for f in faces[:2]])  # type: ignore[misc]  # SDK accepts dicts
    result = api.push(workbench=lwb)
    assert (result.adopted, result.pushed) == (2, 2)
    tasks = list(ls.sdk.tasks.list(project=setup.ls_project_id))
    assert sorted(cast(dict[str, Any], t.data)["face_id"] for t in tasks) == faces
    assert sorted(task_ids(lwb).values()) == sorted(cast(int, t.id) for t in tasks)


# -- pull ---------------------------------------------------------------------------------------

def test_pull_takes_in_new_edited_and_deleted_annotations_once(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=3)
    ls, tasks = setup_and_push(lwb)
    ann = labeler(ls, "ann")
    a0 = annotate(ls, tasks[faces[0]], ann, eyes="open", age_band="adult")
    a1 = annotate(ls, tasks[faces[1]], ann, eyes="closed")

    first = api.pull(workbench=lwb)
    assert (first.added, first.superseded, first.retracted) == (3, 0, 0)
    email = "ann@studio.test"
    assert _current(lwb) == sorted([(faces[0], "age_band", "adult", email), (faces[0], "eyes", "open", email),
                                    (faces[1], "eyes", "closed", email)])
    assert api.pull(workbench=lwb).added == 0  # nothing changed: nothing read twice

    ls.sdk.annotations.update(id=a0, result=[choice("eyes", "half_closed"), choice("age_band", "adult")])
    ls.sdk.annotations.delete(id=a1)
    second = api.pull(workbench=lwb)
    assert (second.added, second.superseded, second.retracted) == (2, 2, 1)
    assert _current(lwb) == sorted([(faces[0], "age_band", "adult", email), (faces[0], "eyes", "half_closed", email)])
    with lwb.db.unit_of_work() as session:
        history = session.execute(select(Label.value, Label.state).where(
            Label.face_id == faces[0], Label.attribute == "eyes", Label.source == "annotation").order_by(Label.id)).all()
    assert history == [("open", "superseded"), ("half_closed", "current")]


def test_unknown_values_are_kept_raw_and_reported(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=1)
    ls, tasks = setup_and_push(lwb)
    annotate(ls, tasks[faces[0]], labeler(ls, "ann"), eyes="winking")
    result = api.pull(workbench=lwb)
    assert [(u["attribute"], u["value"]) for u in result.unknown] == [("eyes", "winking")]
    with lwb.db.unit_of_work() as session:
        row = session.scalars(select(Label).where(Label.source == "annotation")).one()
    assert row.raw is not None
    assert (row.value, row.known, row.raw["value"]["choices"]) == ("winking", False, ["winking"])


def test_overlap_consensus_ties_and_agreement(lwb: Workbench, tmp_path: Path) -> None:
    lwb.settings.label_overlap = 3
    faces = add_faces(lwb, tmp_path, n=3)
    setup = api.setup(workbench=lwb)
    ls = api.client(workbench=lwb)
    remote = ls.sdk.projects.get(setup.ls_project_id)
    assert (remote.maximum_annotations, remote.overlap_cohort_percentage) == (3, 100)
    api.push(workbench=lwb)
    tasks = task_ids(lwb)
    a, b, c = (labeler(ls, n) for n in ("ann", "bea", "cyd"))
    # face 0: all say open; face 1: 2 closed vs 1 open; face 2: two annotators split (a tie).
    for user, value in ((a, "open"), (b, "open"), (c, "open")):
        annotate(ls, tasks[faces[0]], user, eyes=value)
    for user, value in ((a, "closed"), (b, "closed"), (c, "open")):
        annotate(ls, tasks[faces[1]], user, eyes=value)
    for user, value in ((a, "open"), (b, "closed")):
        annotate(ls, tasks[faces[2]], user, eyes=value)
    api.pull(workbench=lwb)
    with lwb.db.unit_of_work() as session:
        split = api.disagreements(session=session)
        report = {r.attribute: r for r in api.agreement_report(session=session)}
        values = api.consensus_values(session=session, attributes={"eyes"}, face_ids=faces)
        full = {(c.face_id, c.attribute): c.value for c in api.consensus(session=session)}
    # The snapshot pool's fast path gives the same majority and the same tie, for the named attribute only.
    assert values == {faces[0]: {"eyes": "open"}, faces[1]: {"eyes": "closed"}, faces[2]: {"eyes": None}}
    assert all(full[(face, "eyes")] == v["eyes"] for face, v in values.items())
    assert [(d.consensus.face_id, d.consensus.tied, d.consensus.value) for d in split] == \
        [(faces[2], True, None), (faces[1], False, "closed")]
    assert split[0].ls_task_id == tasks[faces[2]]
    # Krippendorff's nominal alpha from its coincidence matrix: each ordered pair of ratings in a
    # face adds 1/(m - 1). Face 0 gives open-open 3; face 1 closed-closed 1, open-closed 1 each
    # way; face 2 open-closed 1 each way. So n_open = 5, n_closed = 3, n = 8, disagreeing pairs 4,
    # and alpha = 1 - (n - 1) * 4 / (2 * n_open * n_closed) = 1 - 28/30.
    expected = 1 - 28 / 30
    assert report["eyes"].alpha == pytest.approx(expected, abs=1e-9)
    assert report["eyes"].faces_rated_twice == 3 and report["age_band"].alpha is None


def test_taxonomy_change_migrates_the_project_and_keeps_annotations(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=1)
    ls, tasks = setup_and_push(lwb)
    annotate(ls, tasks[faces[0]], labeler(ls, "ann"), eyewear="sunglasses")
    api.pull(workbench=lwb)
    # A new value, and a value that leaves the taxonomy while an annotation still uses it.
    changed = Taxonomy(tuple(
        dataclasses.replace(a, choices=tuple(c for c in a.choices if c.value != "sunglasses") + (Choice("goggles", "Goggles"),))
        if a.name == "eyewear" else a for a in TAXONOMY.attributes))
    result = api.setup(workbench=lwb, taxonomy=changed)
    assert (result.created, result.config_changed, result.retired) == (False, True, {"eyewear": ["sunglasses"]})
    remote = ls.sdk.projects.get(result.ls_project_id)
    assert remote.label_config is not None
    assert 'value="goggles"' in remote.label_config and 'value="sunglasses"' in remote.label_config
    assert len(list(ls.sdk.tasks.list(project=result.ls_project_id, fields="all"))[0].annotations) == 1  # type: ignore[arg-type]  # stub says str
    assert api.setup(workbench=lwb, taxonomy=changed).config_changed is False
    assert _current(lwb) == [(faces[0], "eyewear", "sunglasses", "ann@studio.test")]


def test_pull_survives_the_server_dying_mid_pull(lwb: Workbench, tmp_path: Path, label_studio: LabelStudioServer) -> None:
    faces = add_faces(lwb, tmp_path, n=12)
    ls, tasks = setup_and_push(lwb)
    user = labeler(ls, "ann")
    annotate(ls, tasks[faces[0]], user, eyes="open", usable="yes")
    first = api.pull(workbench=lwb)  # the first pull exports everything at once; later ones go page by page
    assert first.added == 2
    for face in faces[1:]:
        annotate(ls, tasks[face], user, eyes="open", usable="yes")

    def kill_after_first_page(page: int) -> None:
        if page == 1:
            os.killpg(cast(int, label_studio.connection.pid), 9)

    from labeling import pull as pull_mod
    with pytest.raises(ServiceUnavailable, match="Label Studio"):
        pull_mod.pull_labels(db=lwb.db, client=LabelStudioClient(server.resolve_connection(lwb.settings), attempts=2,
                                                                 backoff_s=0.1),
                             project_id=_project(lwb), taxonomy=TAXONOMY, page_size=5, after_page=kill_after_first_page)
    with lwb.db.unit_of_work() as session:
        assert _as_utc(session.scalars(select(LabelProject)).one().pull_cursor) == first.cursor  # not advanced
    assert len(_current(lwb)) == 2 + 5 * 2  # page 1 (five more tasks, 2 values each) committed

    server.start(label_studio.settings, str(label_studio.blob_root))
    result = api.pull(workbench=lwb)
    assert result.cursor is not None and first.cursor is not None
    assert result.cursor > first.cursor
    rows = _current(lwb)
    assert len(rows) == 24 and len(set(rows)) == 24  # every value once, none doubled
    assert api.pull(workbench=lwb).tasks_read == 0


def _project(wb: Workbench) -> int:
    with wb.db.unit_of_work() as session:
        return session.scalars(select(LabelProject)).one().id
