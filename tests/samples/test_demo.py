from __future__ import annotations

from typing import cast

from sqlalchemy import select

from likeness.models import Shot
from likeness.users import authenticate
from likeness.workbench import Workbench
from samples.demo import DEMO_PASSWORD, DEMO_USERS, prepare_demo


def test_demo_builds_a_working_workbench_and_can_run_twice(workbench: Workbench) -> None:
    prepare_demo(workbench)
    with workbench.db.unit_of_work() as session:
        for username, role in DEMO_USERS.items():
            signed_in = authenticate(session=session, username=username, password=DEMO_PASSWORD)
            assert signed_in is not None and signed_in.role is role
        statuses: list[str] = list(session.scalars(select(Shot.status)))
        reasons = {cast(str, reason) for status, reason in session.execute(select(Shot.status, Shot.reason)) if status == "rejected"}
    # The sample varies exposure on purpose: shot QA rejects the extremes, the rest are accepted.
    assert statuses.count("accepted") >= 3 and "quarantined" in statuses and "rejected" in statuses
    assert all(reason.startswith("qa_") for reason in reasons)
    prepare_demo(workbench)  # idempotent: nothing new
    with workbench.db.unit_of_work() as session:
        assert sorted(session.scalars(select(Shot.status))) == sorted(statuses)
