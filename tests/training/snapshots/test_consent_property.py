"""Property: whatever people, releases, shots, labels and build days there are, no snapshot
contains a face whose release did not cover it on its capture date and on the build date.

The oracle below is written from the release rules (signed by the capture, names ai_training,
never revoked, unexpired on both days, a guardian's signature for a minor on either day), not
from `ingest.releases`, so it checks that code too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from likeness.errors import InvalidInput
from likeness.models import Face, Label, LabelState, Person, PersonalData, Release, Shoot, Shot, ShotStatus, SnapshotMember
from likeness.workbench import Workbench
from samples.labelled_pool import crop_png
from training.snapshots import api

BASE = dt.date(2026, 1, 1)
NAMESPACE = itertools.count()


@dataclass(frozen=True)
class ReleasePlan:
    signed: int                    # days after BASE
    expires: int | None            # days after signing
    revoked: bool
    scope: bool                    # covers ai_training
    guardian: bool


@dataclass(frozen=True)
class PersonPlan:
    birth_years_before: int        # age in years at BASE (minors below 18)
    releases: list[ReleasePlan]
    captures: list[int]            # capture days after BASE, one face each
    senior: bool


releases = st.builds(ReleasePlan, signed=st.integers(0, 200), expires=st.none() | st.integers(0, 300),
                     revoked=st.booleans(), scope=st.booleans(), guardian=st.booleans())
people = st.builds(PersonPlan, birth_years_before=st.sampled_from([10, 17, 18, 40]),
                   releases=st.lists(releases, max_size=2), captures=st.lists(st.integers(0, 300), min_size=1, max_size=4),
                   senior=st.booleans())


def covered(person: PersonPlan, capture: dt.date, build_day: dt.date) -> bool:
    birth = dt.date(BASE.year - person.birth_years_before, 7, 1)

    def adult_on(day: dt.date) -> bool:
        return (day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))) >= 18

    for r in person.releases:
        signed = BASE + dt.timedelta(days=r.signed)
        expires = None if r.expires is None else signed + dt.timedelta(days=r.expires)
        days = (capture, max(capture, build_day))
        if (r.scope and not r.revoked and signed <= capture and all(expires is None or day <= expires for day in days)
                and all(adult_on(day) or r.guardian for day in days)):
            return True
    return False


def write(workbench: Workbench, plans: list[PersonPlan]) -> tuple[str, dict[int, tuple[PersonPlan, dt.date]]]:
    tag = f"n{next(NAMESPACE)}"
    faces: dict[int, tuple[PersonPlan, dt.date]] = {}
    with workbench.db.unit_of_work() as session:
        shoot = Shoot(name=f"property {tag}", shoot_date=BASE)
        session.add(shoot)
        session.flush()
        for i, plan in enumerate(plans):
            person = Person(code=f"{tag}-{i}")
            session.add(person)
            session.flush()
            session.add(PersonalData(person_id=person.id, legal_name="x",
                                     date_of_birth=dt.date(BASE.year - plan.birth_years_before, 7, 1)))
            for j, r in enumerate(plan.releases):
                signed = BASE + dt.timedelta(days=r.signed)
                session.add(Release(
                    person_id=person.id, document_sha256=hashlib.sha256(f"{tag} {i} {j}".encode()).hexdigest(),
                    document_name="r.pdf", document_type="application/pdf", signed_on=signed,
                    expires_on=None if r.expires is None else signed + dt.timedelta(days=r.expires),
                    scopes=["ai_training"] if r.scope else ["editorial"], guardian_name="G" if r.guardian else None,
                    revoked_on=signed if r.revoked else None))
            for k, day in enumerate(plan.captures):
                capture = BASE + dt.timedelta(days=day)
                shot_id = session.execute(insert(Shot).returning(Shot.id), [{
                    "sha256": hashlib.sha256(f"{tag} {i} {k}".encode()).hexdigest(), "shoot_id": shoot.id,
                    "person_id": person.id, "sitter_code": person.code, "relative_path": f"{i}/{k}.dng",
                    "file_format": "dng", "file_size": 1, "width": 10, "height": 10, "capture_date": capture,
                    "status": ShotStatus.accepted, "face_count": 1, "qa": {"passed": True, "checks": []}, "exif": {}}]).scalar_one()
                face = Face(shot_id=shot_id, face_index=0, box=[], score=1.0, landmarks=[], quad=[], crop_size=8,
                            crop_sha256=workbench.blobs.put_bytes(crop_png(len(faces), side=8)))
                session.add(face)
                session.flush()
                session.add(Label(face_id=face.id, attribute="age_band", value="senior" if plan.senior else "adult",
                                  source="annotation", annotator="a", state=LabelState.current))
                faces[face.id] = (plan, capture)
    return f"property {tag}", faces


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plans=st.lists(people, min_size=1, max_size=6), build_day=st.integers(0, 400), size=st.integers(1, 8),
       senior_share=st.sampled_from([0.0, 0.5, 1.0]))
def test_no_snapshot_holds_an_uncovered_face(workbench: Workbench, plans: list[PersonPlan], build_day: int, size: int,
                                             senior_share: float) -> None:
    shoot, faces = write(workbench, plans)
    day = BASE + dt.timedelta(days=build_day)
    spec = (f'size = {size}\nresolution = 8\ntolerance = 0.5\n[filters]\nshoots = ["{shoot}"]\n'
            f'[quotas.age_band]\nsenior = {senior_share}\n"*" = {1 - senior_share}\n')
    eligible = [f for f, (plan, capture) in faces.items() if covered(plan, capture, day)]
    try:
        result = api.build(workbench, spec, actor="property", admin=True, today=day)
    except InvalidInput:
        assert size > len(eligible), "a build is refused only when the eligible pool is too small"
        return
    with workbench.db.unit_of_work() as session:
        chosen = list(session.scalars(select(SnapshotMember.face_id).where(SnapshotMember.snapshot_id == result.snapshot_id)))
    assert chosen and set(chosen) <= set(eligible)
    assert len(chosen) == min(size, len(eligible))
