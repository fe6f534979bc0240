from __future__ import annotations

from sqlalchemy import select

from ingest.demo import DEMO_PASSWORD, DEMO_USERS, prepare_demo
from likeness.models import Shot
from likeness.users import authenticate
from likeness.workbench import Workbench


def test_demo_builds_a_working_workbench_and_can_run_twice(workbench: Workbench) -> None:
    prepare_demo(workbench)
    with workbench.db.unit_of_work() as session:
        for username, role in DEMO_USERS.items():
            signed_in = authenticate(session=session, username=username, password=DEMO_PASSWORD)
            assert signed_in is not None and signed_in.role is role
        statuses = list(session.scalars(select(Shot.status)))
    assert statuses.count("accepted") >= 4 and "quarantined" in statuses
    prepare_demo(workbench)  # idempotent: nothing new
    with workbench.db.unit_of_work() as session:
        assert sorted(session.scalars(select(Shot.status))) == sorted(statuses)
