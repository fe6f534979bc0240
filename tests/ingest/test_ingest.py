from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest
from PIL import Image
from sqlalchemy import func, select

from ingest import api
from ingest.gate import CAPTURE_DATE_TOLERANCE
from likeness import doctor
from likeness.errors import InvalidInput
from likeness.models import Face, IngestFailure, Shot
from likeness.workbench import Workbench
from samples.shoot import SampleShoot
from tests.factories.people import SHOOT_DATE, register_sitter
from tests.factories.shoots import write_shoot_toml


def _state(workbench: Workbench) -> tuple[list[tuple], set[str]]:
    """Every stored row that matters plus every blob: to prove nothing changed."""
    with workbench.db.unit_of_work() as session:
        shots = session.execute(
            select(Shot.sha256, Shot.status, Shot.reason, Shot.preview_sha256, Shot.face_count).order_by(Shot.sha256)
        ).all()
        faces = session.execute(select(Face.shot_id, Face.face_index, Face.crop_sha256).order_by(Face.id)).all()
    return [tuple(r) for r in shots] + [tuple(r) for r in faces], set(workbench.blobs.iter_hashes())


def test_sample_shoot_ingests_with_every_outcome(workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    register_sitter(workbench, tmp_path)
    seen = []
    summary = api.ingest_folder(
        workbench=workbench, path=sample_shoot.path, actor="test", progress=lambda d, t, p: seen.append((d, t))
    )
    assert sorted(summary.accepted) == sorted(sample_shoot.good_frames)
    assert sorted(summary.quarantined["no_face"]) == sorted(sample_shoot.no_face_frames)
    assert sorted(summary.quarantined["unknown_sitter"]) == sorted(sample_shoot.unknown_sitter_frames)
    assert sorted(p for p, _ in summary.duplicates) == sorted(sample_shoot.duplicates)
    assert {p: kind for p, kind, _ in summary.failed} == sample_shoot.bad_files
    assert not summary.ok
    assert seen[-1] == (summary.files, summary.files) and len(seen) == summary.files

    with workbench.db.unit_of_work() as session:
        shots = {s.relative_path: s for s in session.scalars(select(Shot))}
        for relative in sample_shoot.good_frames:
            shot = shots[relative]
            assert (shot.make, shot.model, shot.file_format) == ("Likeness", "Studio Simulator", "DNG")
            assert shot.status == "accepted" and shot.face_count == 1 and shot.preview_source == "embedded"
            face = shot.faces[0]
            assert len(face.landmarks) == 478 and cast(float, face.ear_left) > 0.15
            crop = Image.open(workbench.blobs.open(cast(str, face.crop_sha256)))
            assert crop.size == (workbench.settings.align_size,) * 2
            assert workbench.blobs.read_bytes(shot.sha256) == (sample_shoot.path / relative).read_bytes()
        portrait = [s for s in shots.values() if s.orientation == 6]
        assert portrait and all(s.height > s.width for s in portrait)  # orientation honoured
        failures = {f.relative_path: f.reason for f in session.scalars(select(IngestFailure))}
        assert set(failures) == set(sample_shoot.bad_files)
        assert all(reason for reason in failures.values())

    # The same folder again adds nothing and touches nothing.
    before = _state(workbench)
    again = api.ingest_folder(workbench=workbench, path=sample_shoot.path, actor="test")
    assert again.accepted == [] and not again.quarantined
    # The in-folder copy of a frame now matches a stored shot too.
    assert sorted(again.already_stored) == sorted([*shots, *sample_shoot.duplicates])
    assert _state(workbench) == before
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(IngestFailure)) == len(sample_shoot.bad_files)
        report = doctor.check(session=session, blobs=workbench.blobs)
    assert report.healthy, report


def test_frames_wait_in_quarantine_until_sitter_and_release_exist(
    workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path
) -> None:
    summary = api.ingest_folder(workbench=workbench, path=sample_shoot.path, actor="test")
    assert not summary.accepted
    assert set(summary.quarantined["unknown_sitter"]) >= set(sample_shoot.good_frames)
    register_sitter(workbench, tmp_path, release=False)  # adding the person re-checks by itself
    with workbench.db.unit_of_work() as session:
        reasons = dict(session.execute(select(Shot.relative_path, Shot.reason)).all())
    assert {reasons[p] for p in sample_shoot.good_frames} == {"no_release"}
    before_blobs = set(workbench.blobs.iter_hashes())
    register_sitter_release_only(workbench, tmp_path)
    with workbench.db.unit_of_work() as session:
        statuses = dict(session.execute(select(Shot.relative_path, Shot.status)).all())
        assert {statuses[p] for p in sample_shoot.good_frames} == {"accepted"}
        assert {statuses[p] for p in sample_shoot.unknown_sitter_frames} == {"quarantined"}
        result = api.recheck(session=session, actor="test")
    assert result.accepted == result.quarantined == 0  # nothing left to change
    assert set(workbench.blobs.iter_hashes()) - before_blobs == {_latest_release_document(workbench)}  # no re-decode


def register_sitter_release_only(workbench: Workbench, tmp_path: Path) -> None:
    from samples.releases import add_signed_release

    with workbench.db.unit_of_work() as session:
        add_signed_release(session=session, blobs=workbench.blobs, code="P0001", document_dir=tmp_path,
                           signed_on=SHOOT_DATE, actor="test")


def _latest_release_document(workbench: Workbench) -> str:
    from likeness.models import Release

    with workbench.db.unit_of_work() as session:
        return cast(str, session.scalar(select(Release.document_sha256).order_by(Release.id.desc())))


def test_revoking_a_release_quarantines_its_frames(workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    register_sitter(workbench, tmp_path)
    api.ingest_folder(workbench=workbench, path=sample_shoot.path, actor="test")
    with workbench.db.unit_of_work() as session:
        person = api.get_person(session=session, code="P0001")
        result = api.revoke_release(session=session, release_id=person.releases[0].id, reason="withdrawn", actor="test")
    # Only accepted frames are newly quarantined; the no-face frame was quarantined already and
    # now gives the revocation as its reason (consent is judged before faces).
    assert result.quarantined == len(sample_shoot.good_frames)
    assert result.reason_changed == len(sample_shoot.no_face_frames)
    assert f"{len(sample_shoot.good_frames)} newly quarantined" in result.describe()
    with workbench.db.unit_of_work() as session:
        reasons = dict(session.execute(select(Shot.relative_path, Shot.reason)).all())
        assert {reasons[p] for p in sample_shoot.good_frames} == {"release_revoked"}
        assert session.scalar(select(func.count()).select_from(Shot).where(Shot.status == "accepted")) == 0


def _raw_expectations(testdata: Path) -> dict[str, dict[str, str]]:
    """Make/model and decoded size per RAW file, read from the test data's own README table."""
    rows = {}
    for line in (testdata / "README.md").read_text().splitlines():
        if line.startswith("| `raw/"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`").split("/", 1)[1]] = {
                "label": cells[1], "make_model": cells[3].split(" (")[0].replace(" / ", " "), "half": cells[5],
            }
    return rows


def test_every_testdata_raw_file_ingests_or_fails_as_predicted(workbench: Workbench, testdata_dir: Path, tmp_path: Path) -> None:
    shoot = tmp_path / "raw-shoot"
    write_shoot_toml(shoot, name="raw-files", sitters=["P0001"])
    shutil.copytree(testdata_dir / "raw", shoot / "P0001")
    register_sitter(workbench, tmp_path)
    expected = _raw_expectations(testdata_dir)
    assert len(expected) == len(list((testdata_dir / "raw").iterdir()))
    summary = api.ingest_folder(workbench=workbench, path=shoot, actor="test")
    failed = {Path(p).name: (kind, reason) for p, kind, reason in summary.failed}
    with workbench.db.unit_of_work() as session:
        shots = {Path(s.relative_path).name: s for s in session.scalars(select(Shot))}
        for name, row in expected.items():
            if row["label"] == "raw_unsupported":
                kind, reason = failed[name]
                assert kind == "unsupported_format" and "LibRaw cannot decode" in reason
                assert name not in shots
                continue
            shot = shots[name]
            assert f"{shot.make} {shot.model}" == row["make_model"]
            half_w, half_h = (int(v) for v in row["half"].split(" ")[0].split("x"))
            assert abs(shot.width - 2 * half_w) <= 2 and abs(shot.height - 2 * half_h) <= 2
            preview = Image.open(workbench.blobs.open(cast(str, shot.preview_sha256)))
            assert max(preview.size) <= workbench.settings.preview_size and min(preview.size) > 16
            assert shot.face_count == 0  # none of these RAW files shows a person
            # Their cameras dated them years before this shoot: an admin must decide.
            far = shot.captured_at is not None and abs(shot.captured_at.date() - SHOOT_DATE) > CAPTURE_DATE_TOLERANCE
            assert shot.reason == ("capture_date_mismatch" if far else "no_face"), (name, shot.captured_at)


def test_testdata_faces_as_frames(workbench: Workbench, testdata_dir: Path, tmp_path: Path) -> None:
    shoot = tmp_path / "face-shoot"
    write_shoot_toml(shoot, name="faces", sitters=["P0001"])
    for label in ("open", "closed", "crossed", "none"):
        shutil.copytree(testdata_dir / "faces" / label, shoot / "P0001" / label)
    register_sitter(workbench, tmp_path)
    api.ingest_folder(workbench=workbench, path=shoot, actor="test")
    with workbench.db.unit_of_work() as session:
        counts = dict(session.execute(select(Shot.relative_path, Shot.face_count)).all())
    for relative, count in counts.items():
        label = relative.split("/")[1]
        if label == "none":
            assert count == 0, relative
        elif "two_people" in relative:
            assert count == 2, relative
        else:
            assert count >= 1, relative
    assert counts["P0001/open/curie_lab_exif_orientation_6.jpg"] >= 1  # EXIF-rotated, small faces
    assert len(counts) == sum(1 for _ in (testdata_dir / "faces").rglob("*.*"))


def test_bad_input_is_recorded_and_leaves_stored_data_alone(
    workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path
) -> None:
    register_sitter(workbench, tmp_path)
    api.ingest_folder(workbench=workbench, path=sample_shoot.path, actor="test")
    before = _state(workbench)
    bad = tmp_path / "bad-shoot"
    write_shoot_toml(bad, name="bad", sitters=["P0001"])
    frames = bad / "P0001"
    frames.mkdir()
    good = (sample_shoot.path / sample_shoot.good_frames[0]).read_bytes()
    (frames / "cut.dng").write_bytes(good[: len(good) // 2])
    (frames / "zero.nef").write_bytes(b"")
    (frames / "readme.cr2").write_text("not a raw file")
    Image.new("1", (30_000, 30_000)).save(frames / "bomb.png")  # tiny file, 900 megapixels
    (frames / "cut.jpg").write_bytes((sample_shoot.path / sample_shoot.good_frames[0]).read_bytes()[:0] + _jpeg_bytes()[:300])
    summary = api.ingest_folder(workbench=workbench, path=bad, actor="test")
    kinds = {Path(p).name: kind for p, kind, _ in summary.failed}
    assert kinds == {"cut.dng": "truncated", "zero.nef": "empty", "readme.cr2": "not_an_image",
                     "bomb.png": "too_large", "cut.jpg": "truncated"}
    reasons = {Path(p).name: reason for p, _, reason in summary.failed}
    assert "megapixel" in reasons["bomb.png"] or "pixel limit" in reasons["bomb.png"]
    assert _state(workbench) == before


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "grey").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_shoot_folder_errors_name_the_file(workbench: Workbench, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="shoot.toml is missing"):
        api.ingest_folder(workbench=workbench, path=tmp_path, actor="test")
    (tmp_path / "shoot.toml").write_text("date = 2026-13-01\n")
    with pytest.raises(InvalidInput, match="shoot.toml is not valid TOML"):
        api.ingest_folder(workbench=workbench, path=tmp_path, actor="test")
    (tmp_path / "shoot.toml").write_text('date = 2026-01-01\nsitters = ["bad code!"]\n')
    with pytest.raises(InvalidInput, match="person code"):
        api.ingest_folder(workbench=workbench, path=tmp_path, actor="test")
    (tmp_path / "shoot.toml").write_text("date = 2026-01-01\ncolour = 'red'\n")
    with pytest.raises(InvalidInput, match="colour"):
        api.ingest_folder(workbench=workbench, path=tmp_path, actor="test")
