from __future__ import annotations

from pathlib import Path
from typing import cast

from PIL import Image
from sqlalchemy import select

from ingest import api as ingest_api
from likeness.models import AuditEvent, Face, ReviewItem, Shot
from likeness.workbench import Workbench
from qa import api
from qa.review import reviewable
from samples.shoot import SampleShoot
from tests.factories.people import register_sitter


def _ingest(workbench: Workbench, shoot: SampleShoot, tmp_path: Path) -> int:
    register_sitter(workbench, tmp_path)
    return ingest_api.ingest_folder(workbench=workbench, path=shoot.path, actor="test").shoot_id


def test_shot_qa_on_a_real_shoot(workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    shoot_id = _ingest(workbench, sample_shoot, tmp_path)
    with workbench.db.unit_of_work() as session:
        result = api.run_shot_qa(session=session, blobs=workbench.blobs, shoot_id=shoot_id, actor="test")
    with workbench.db.unit_of_work() as session:
        shots = {s.relative_path: s for s in session.scalars(select(Shot))}
        for relative in sample_shoot.good_frames:
            qa = shots[relative].qa
            names = {c["name"] for c in qa["checks"]}
            assert {"sharpness", "clipped_highlights", "face_luma", "head_yaw", "eyes", "white_balance_shift",
                    "exposure_shift"} <= names
            assert all("threshold" in c and "value" in c for c in qa["checks"])
            eyes = next(c for c in qa["checks"] if c["name"] == "eyes")
            assert eyes["value"] == "open"  # the astronaut's eyes are open in every frame
        reference = shots["P0001/frame_01.dng"].qa["checks"]
        assert next(c for c in reference if c["name"] == "exposure_shift")["value"] == 0.0
        statuses = {p: (s.status, s.reason) for p, s in shots.items()}
        rejected = {p for p, (status, _) in statuses.items() if status == "rejected"}
        assert rejected == {p for p, s in shots.items() if not s.qa["passed"] and p in sample_shoot.good_frames}
        for path in rejected:
            assert cast(str, statuses[path][1]).startswith("qa_") and shots[path].reason_detail
        # The frame rendered one stop brighter than the reference fails on exposure.
        brightest = max(sample_shoot.good_frames, key=lambda p: next(
            c["value"] for c in shots[p].qa["checks"] if c["name"] == "exposure_shift"))
        assert brightest in rejected
        items = session.scalars(select(ReviewItem)).all()
        visible = session.scalars(select(ReviewItem).where(reviewable())).all()
        assert len(visible) == result.queued_faces >= len(sample_shoot.good_frames)
        # Faces of quarantined frames (here the frame nobody is assigned to) are withheld from reviewers.
        face_status = dict(session.execute(select(Face.id, Shot.status).join(Shot, Shot.id == Face.shot_id)).all())
        assert {i.id for i in items} - {i.id for i in visible} == {
            i.id for i in items if i.face_id is not None and face_status[i.face_id] == "quarantined"} != set()
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "shot.status")) is not None
    # Running QA again changes nothing.
    with workbench.db.unit_of_work() as session:
        again = api.run_shot_qa(session=session, blobs=workbench.blobs, shoot_id=shoot_id, actor="test")
    assert (again.rejected, again.restored) == (0, 0)
    with workbench.db.unit_of_work() as session:
        assert len(session.scalars(select(ReviewItem)).all()) == len(items)


def test_consistency_report_is_a_plot(workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    shoot_id = _ingest(workbench, sample_shoot, tmp_path)
    with workbench.db.unit_of_work() as session:
        api.run_shot_qa(session=session, blobs=workbench.blobs, shoot_id=shoot_id, actor="test")
        png = api.consistency_report(session=session, shoot_id=shoot_id)
    path = tmp_path / "report.png"
    path.write_bytes(png)
    image = Image.open(path)
    assert image.format == "PNG" and image.width >= 600 and image.height >= 600


def test_face_images_are_checked_with_one_mesh_pass(testdata_dir: Path) -> None:
    """An aligned crop (or, later, a generated face) gets the eye verdict and face checks directly."""
    import numpy as np

    from faces.align import align_face, ffhq_quad
    from faces.detect import find_faces
    from qa.eyes import load_upright

    def crop_of(relative: str) -> np.ndarray:
        rgb = load_upright(testdata_dir / relative)
        return align_face(rgb, ffhq_quad(find_faces(rgb)[0].landmarks), 512)

    open_eyes = api.qa_face_image(crop_of("faces/open/selfie_open_eyes.jpg"))
    closed = api.qa_face_image(crop_of("faces/closed/selfie_closed_eyes.jpg"))
    assert open_eyes.found and cast(dict, open_eyes.eyes)["state"] == "open" and open_eyes.flag is None
    assert closed.found and cast(dict, closed.eyes)["state"] == "closed" and closed.flag == "closed"
    assert {"sharpness", "face_luma", "eyes"} <= {c["name"] for c in closed.checks}
    blank = api.qa_face_image(np.full((512, 512, 3), 128, np.uint8))
    assert not blank.found and blank.flag is None
