"""A frame's status is derived in one place, from consent first and shot QA second, whatever
order releases are added and revoked, sitters registered and QA rerun with other thresholds.
The review queue shows a frame's face exactly while its consent holds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import delete, select, update

from ingest import api as ingest_api
from likeness.models import Face, Person, PersonalData, Release, ReviewItem, Role, Shot, ShotStatus
from likeness.workbench import Workbench
from pipeline.api import ingest_and_check
from qa import api as qa_api
from qa.shot_qa import ShotQaThresholds
from samples.releases import add_signed_release
from samples.shoot import build_sample_shoot
from tests.factories.people import add_user, user_id

SITTER = "P0001"
SHOOT_DATE = dt.date(2026, 11, 20)
# Thresholds every frame passes, and ones every frame fails (no face is that sharp).
LENIENT = ShotQaThresholds(
    min_sharpness=0.0, min_relative_sharpness=0.0, max_clipped_highlights=1.0, max_clipped_shadows=1.0,
    min_face_luma=0.0, max_face_luma=255.0, max_wb_shift=1e9, max_exposure_shift=1e9,
    max_yaw=180.0, max_pitch=180.0, max_roll=180.0,
)
STRICT = dataclasses.replace(LENIENT, min_sharpness=1e12)


def expected_status(registered: bool, releases: list[tuple[dt.date, bool]], qa: bool | None) -> ShotStatus:
    """The rule, written independently of the code: consent, then QA."""
    consent = registered and any(signed <= SHOOT_DATE and not revoked for signed, revoked in releases)
    if not consent:
        return ShotStatus.quarantined
    return ShotStatus.rejected if qa is False else ShotStatus.accepted


@pytest.mark.slow
def test_status_follows_consent_then_qa_in_any_order(workbench: Workbench, tmp_path: Path) -> None:
    shoot = build_sample_shoot(tmp_path / "shoot", sitter=SITTER, date=SHOOT_DATE, n_good=1, frame_size=(512, 384),
                               include_bad=False)
    ingest_and_check(workbench=workbench, path=shoot.path, actor="test")  # nobody registered yet
    add_user(workbench, "rita", Role.reviewer)
    reviewer = user_id(workbench, "rita")
    documents = tmp_path / "releases"

    class Events(RuleBasedStateMachine):
        @initialize()
        def fresh(self) -> None:
            # Every example starts from the same stored frame: no sitter, no release, no QA.
            with workbench.db.unit_of_work() as session:
                session.execute(delete(ReviewItem))
                session.execute(update(Shot).values(person_id=None))
                session.execute(delete(Release))
                session.execute(delete(PersonalData))
                session.execute(delete(Person))
                for shot in session.scalars(select(Shot)):
                    shot.qa = {}
                ingest_api.recheck(session=session, actor="test")
            self.registered = False
            self.releases: list[tuple[dt.date, bool]] = []
            self.qa: bool | None = None
            self.ids: list[int] = []

        @rule()
        def register(self) -> None:
            if not self.registered:
                with workbench.db.unit_of_work() as session:
                    ingest_api.add_person(session=session, code=SITTER, actor="test")
                self.registered = True

        @rule(days_before_shoot=st.sampled_from([30, 0, -3]))
        def add_release(self, days_before_shoot: int) -> None:
            if not self.registered:
                return
            signed = SHOOT_DATE - dt.timedelta(days=days_before_shoot)
            with workbench.db.unit_of_work() as session:
                release_id = add_signed_release(session=session, blobs=workbench.blobs, code=SITTER,
                                                document_dir=documents, signed_on=signed, actor="test")
            self.releases.append((signed, False))
            self.ids.append(release_id)

        @rule(data=st.data())
        def revoke(self, data: st.DataObject) -> None:
            open_ = [i for i, (_, revoked) in enumerate(self.releases) if not revoked]
            if not open_:
                return
            index = data.draw(st.sampled_from(open_))
            with workbench.db.unit_of_work() as session:
                ingest_api.revoke_release(session=session, release_id=self.ids[index], reason="withdrawn", actor="test")
            self.releases[index] = (self.releases[index][0], True)

        @rule(passes=st.booleans())
        def rerun_qa(self, passes: bool) -> None:
            with workbench.db.unit_of_work() as session:
                qa_api.run_shot_qa(session=session, blobs=workbench.blobs, actor="test",
                                   thresholds=LENIENT if passes else STRICT)
            self.qa = passes

        @rule()
        def recheck(self) -> None:
            with workbench.db.unit_of_work() as session:
                ingest_api.recheck(session=session, actor="test")

        @invariant()
        def status_is_derived(self) -> None:
            if not hasattr(self, "registered"):
                return
            want = expected_status(self.registered, self.releases, self.qa)
            with workbench.db.unit_of_work() as session:
                shot = session.scalars(select(Shot)).one()
                assert shot.status == want, (shot.status, shot.reason, self.registered, self.releases, self.qa)
                if want is ShotStatus.rejected:
                    assert (shot.reason or "").startswith("qa_")
                queued = {item.face_id for item in qa_api.next_items(session=session, reviewer_id=reviewer)}
                face_id = session.scalar(select(Face.id).where(Face.shot_id == shot.id))
                # Reviewers see the face once QA queued it, and never while consent is missing.
                if want is ShotStatus.quarantined:
                    assert face_id not in queued
                elif self.qa is not None:
                    assert face_id in queued

    Events.TestCase.settings = settings(max_examples=12, stateful_step_count=8, deadline=None,
                                        suppress_health_check=list(HealthCheck))
    Events.TestCase().runTest()
