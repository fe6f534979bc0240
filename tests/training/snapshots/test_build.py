"""Building snapshots on both databases: quotas met, shortfall exact, person cap, person split,
the same hash for the same spec and data, consent, and the export read back by training.dataset."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest import api as ingest_api
from labeling.encoding import label_encoding, parse_label
from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import DatasetSnapshot, Label, Person, SnapshotMember, Split
from likeness.workbench import Workbench
from samples.labelled_pool import SitterPlan, add_pool
from training.dataset import ImageFolderDataset
from training.snapshots import api

TODAY = dt.date(2026, 7, 1)   # within every sample release's life (expired ones end 2026-07-31)
AGES = ("adult", "senior", "child", "young_adult")


def roster(count: int = 12, faces: int = 20, **overrides: str) -> list[SitterPlan]:
    """`count` released sitters over four age bands and ten Monk tones, faces cycling three
    expressions; `overrides` sets a release kind by code (P0003="revoked")."""
    return [SitterPlan(code=f"P{i:04d}", faces=faces + i, person={"age_band": AGES[i % 4], "skin_tone": str(1 + i % 10)},
                       frames={"expression": ["neutral", "smile", "grin"], "usable": ["yes", "yes", "yes", "no"]},
                       shoots=2, release=overrides.get(f"P{i:04d}", "signed")) for i in range(count)]


def seed(workbench: Workbench, sitters: list[SitterPlan]) -> dict[str, list[int]]:
    with workbench.db.unit_of_work() as session:
        return add_pool(session, workbench.blobs, sitters)


def build(workbench: Workbench, spec: str, today: dt.date = TODAY) -> api.BuildResult:
    return api.build(workbench, spec, actor="test", admin=True, today=today)


FEASIBLE = """
size = 100
resolution = 32
seed = 3
tolerance = 0.0
max_person_share = 0.2
validation_share = 0.2
label_attributes = ["age_band", "expression"]
[filters]
labels = { usable = "yes" }
[quotas.age_band]
adult = 0.3
senior = 0.3
child = 0.2
"*" = 0.2
[quotas.expression]
smile = 0.5
"*" = 0.5
[[joint]]
where = { age_band = "senior", expression = "smile" }
share = 0.15
"""


def members(workbench: Workbench, snapshot_id: int) -> list[SnapshotMember]:
    with workbench.db.unit_of_work() as session:
        rows = list(session.scalars(select(SnapshotMember).where(SnapshotMember.snapshot_id == snapshot_id)
                                    .order_by(SnapshotMember.position)))
        session.expunge_all()
        return rows


def test_quotas_met_exactly_on_a_feasible_pool(workbench: Workbench) -> None:
    faces = seed(workbench, roster())
    result = build(workbench, FEASIBLE)
    assert result.created and result.report["size"] == 100 and result.report["size_missing"] == 0
    assert result.shortfall == []
    for cell in result.report["cells"]:
        assert cell["achieved"] == cell["target"], cell
    rows = members(workbench, result.snapshot_id)
    assert len(rows) == 100
    by_face = {face: code for code, ids in faces.items() for face in ids}
    # Counted again from the stored members, not from the report.
    assert sum(1 for m in rows if m.attributes["age_band"] == "senior") == 30
    assert sum(1 for m in rows if m.attributes["age_band"] == "senior" and m.attributes["expression"] == "smile") == 15
    assert sum(1 for m in rows if m.attributes["age_band"] in ("teen", "young_adult")) == 20
    counts: dict[str, int] = {}
    for m in rows:
        assert m.face_id is not None
        counts[by_face[m.face_id]] = counts.get(by_face[m.face_id], 0) + 1
    assert max(counts.values()) <= 20, "per-person cap (0.2 of 100)"


def test_label_filter_and_label_vectors(workbench: Workbench) -> None:
    seed(workbench, roster())
    result = build(workbench, FEASIBLE)
    rows = members(workbench, result.snapshot_id)
    with workbench.db.unit_of_work() as session:
        unusable = set(session.scalars(select(Label.face_id).where(Label.attribute == "usable", Label.value == "no")))
    assert not unusable & {m.face_id for m in rows}
    slots = label_encoding(["age_band", "expression"])
    for m in rows[:10]:
        expected = parse_label(f"age_band={m.attributes['age_band']},expression={m.attributes['expression']}", slots)
        assert m.label == expected
    assert len(rows[0].label) == 1 + 7   # age band ordinal (one slot) + seven expressions one-hot


def test_shortfall_is_exact_and_names_who_could_fill_it(workbench: Workbench) -> None:
    # Seniors: P0001, P0005 and P0009 (21, 25 and 29 faces); P0005's release was revoked.
    seed(workbench, roster(P0005="revoked"))
    spec = FEASIBLE.replace("adult = 0.3\nsenior = 0.3", "adult = 0.1\nsenior = 0.5").replace(
        "[[joint]]\nwhere = { age_band = \"senior\", expression = \"smile\" }\nshare = 0.15\n", "").replace(
        "max_person_share = 0.2", "max_person_share = 1.0")
    result = build(workbench, spec)
    senior = next(c for c in result.report["cells"] if c["key"] == "age_band=senior")
    eligible_seniors = sum(1 for n in (21, 29) for i in range(n) if i % 4 != 3)  # every fourth face is usable = no
    assert senior["achieved"] == eligible_seniors
    assert senior["missing"] == 50 - eligible_seniors
    short = next(s for s in result.shortfall if s.key == "age_band=senior")
    assert short.missing == 50 - eligible_seniors
    assert short.sitters == ["P0001", "P0009"], "released seniors only (P0005 is revoked)"
    assert "needs" in short.describe() and "P0001" in short.describe()
    assert result.report["size"] == 100, "the best feasible set still has the full size"


def test_person_split_has_no_leakage_and_holds_about_the_share(workbench: Workbench) -> None:
    seed(workbench, roster())
    result = build(workbench, FEASIBLE)
    rows = members(workbench, result.snapshot_id)
    train = {m.person_id for m in rows if m.split is Split.train}
    val = {m.person_id for m in rows if m.split is Split.val}
    assert train and val and not train & val
    assert result.report["split"]["leaked_people"] == []
    assert 10 <= sum(1 for m in rows if m.split is Split.val) <= 30


def test_same_spec_same_data_same_hash_and_no_second_row(workbench: Workbench) -> None:
    seed(workbench, roster())
    first, again = build(workbench, FEASIBLE), build(workbench, FEASIBLE)
    assert (again.sha256, again.snapshot_id, again.created) == (first.sha256, first.snapshot_id, False)
    other = build(workbench, FEASIBLE.replace("seed = 3", "seed = 4").replace("tolerance = 0.0", "tolerance = 0.05"))
    assert other.sha256 != first.sha256
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(DatasetSnapshot)) == 2


def test_consent_excluded_at_build_and_rechecked_later(workbench: Workbench) -> None:
    seed(workbench, roster(P0000="revoked", P0002="none", P0004="expired", P0006="minor_no_guardian",
                           P0008="minor_guardian"))
    spec = FEASIBLE.replace("[[joint]]\nwhere = { age_band = \"senior\", expression = \"smile\" }\nshare = 0.15\n", "")
    result = build(workbench, spec.replace("size = 100", "size = 40").replace("max_person_share = 0.2", "max_person_share = 1.0"))
    rows = members(workbench, result.snapshot_id)
    codes = _codes(workbench, {m.person_id for m in rows})
    assert not codes & {"P0000", "P0002", "P0006"}, "revoked, unreleased and a minor without a guardian are never in"
    excluded = result.report["pool"]["excluded"]
    assert excluded["consent: revoked"] == 20 and excluded["consent: missing"] == 22
    assert excluded["consent: minor_without_guardian"] == 26
    # P0004's release expires on 2026-07-31: eligible now, not once it has expired.
    assert "consent: expired" not in excluded
    with workbench.db.unit_of_work() as session:
        assert api.check_consent(session, result.snapshot_id, today=TODAY) == []
        late = api.check_consent(session, result.snapshot_id, today=dt.date(2026, 8, 15), split=None)
    assert "P0004" in codes
    assert [p.person for p in late] == ["P0004"] and "expired" in late[0].detail
    later = build(workbench, spec.replace("size = 100", "size = 40"), today=dt.date(2026, 8, 15))
    assert "P0004" not in _codes(workbench, {m.person_id for m in members(workbench, later.snapshot_id)})


def test_revoking_a_member_release_stops_export(workbench: Workbench, tmp_path: Path) -> None:
    seed(workbench, roster())
    result = build(workbench, FEASIBLE)
    rows = members(workbench, result.snapshot_id)
    victim = next(m for m in rows if m.split is Split.train)
    with workbench.db.unit_of_work() as session:
        ingest_api.revoke_release(session=session, release_id=victim.release_id, reason="withdrawn", actor="test")
    with pytest.raises(ConsentViolation) as raised:
        api.export(workbench, result.snapshot_id, tmp_path / "out.zip", today=TODAY)
    code = _codes(workbench, {victim.person_id}).pop()
    assert code in str(raised.value) and f"#{victim.release_id}" in str(raised.value)
    assert not (tmp_path / "out.zip").exists()


def test_export_is_readable_and_matches_the_manifest(workbench: Workbench, tmp_path: Path) -> None:
    seed(workbench, roster())
    result = build(workbench, FEASIBLE)
    out = api.export(workbench, result.sha256[:10], tmp_path / "snap.zip", today=TODAY)
    rows = [m for m in members(workbench, result.snapshot_id) if m.split is Split.train]
    dataset = ImageFolderDataset(out.path)
    assert len(dataset) == out.images == len(rows)
    assert dataset.resolution == 32 and dataset.fingerprint() == out.fingerprint
    manifest = api.read_manifest(out.path)
    assert manifest["snapshot"]["sha256"] == result.sha256
    assert [i["face_id"] for i in manifest["images"]] == [m.face_id for m in rows]
    assert [i["release_id"] for i in manifest["images"]] == [m.release_id for m in rows]
    with zipfile.ZipFile(out.path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        labels = dict(json.loads(archive.read("dataset.json"))["labels"])
        text = archive.read("manifest.json").decode()
    assert labels[manifest["images"][0]["file"]] == rows[0].label
    assert "Sitter" not in text and "legal_name" not in text, "no personal data in the manifest"
    with pytest.raises(InvalidInput, match="already exists"):
        api.export(workbench, result.snapshot_id, tmp_path / "snap.zip", today=TODAY)


def test_bad_input_gets_one_clear_error(workbench: Workbench) -> None:
    seed(workbench, roster(count=4, faces=5))
    with pytest.raises(InvalidInput, match="larger than the eligible pool"):
        build(workbench, FEASIBLE)
    with pytest.raises(NotFound, match="no shoot named 'nowhere'"):
        build(workbench, FEASIBLE.replace('labels = { usable = "yes" }', 'shoots = ["nowhere"]'))
    with pytest.raises(NotFound):
        api.snapshot_detail(workbench, "424242")


def test_a_failed_build_leaves_no_snapshot(workbench: Workbench) -> None:
    seed(workbench, roster())
    with pytest.raises(InvalidInput):
        build(workbench, FEASIBLE.replace("size = 100", "size = 100000"))
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(DatasetSnapshot)) == 0
        assert session.scalar(select(func.count()).select_from(SnapshotMember)) == 0


def _codes(workbench: Workbench, person_ids: set[int]) -> set[str]:
    with workbench.db.unit_of_work() as session:
        return set(session.scalars(select(Person.code).where(Person.id.in_(person_ids))))
