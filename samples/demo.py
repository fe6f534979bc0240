"""`likeness demo`: a sample shoot rendered from a real portrait, its sitter and release, demo
users, the ingest, and the workbench, on the embedded defaults."""

from __future__ import annotations

import datetime as dt
import logging

import typer
from sqlalchemy import select

from likeness import users
from likeness.cli import app_command, console, sub_app
from likeness.models import Person, Role, User
from likeness.workbench import Workbench
from pipeline.api import ingest_and_check
from pipeline.cli import print_summary
from samples.releases import register_sitter
from samples.shoot import build_sample_shoot

log = logging.getLogger(__name__)

demo_app = sub_app("Build a sample shoot, ingest it and open the workbench.", no_args_is_help=False)

SITTER = "P0001"
SHOOT_DATE = dt.date(2026, 11, 20)
DEMO_PASSWORD = "likeness-demo"
DEMO_FRAME_SIZE = (3072, 2048)
DEMO_USERS = {"admin": Role.admin, "photographer": Role.photographer, "labeler": Role.labeler, "reviewer": Role.reviewer}


def prepare_demo(workbench: Workbench) -> None:
    """Idempotent: re-running reuses what the last run made."""
    workbench.db.upgrade()
    data_dir = workbench.settings.data_dir
    shoot_dir = data_dir / "demo-shoot"
    if not (shoot_dir / "shoot.toml").exists():
        console.print(f"rendering the sample shoot into {shoot_dir} …")
        # Frames large enough that the 1024 px aligned crops do not enlarge the face more than 2x.
        build_sample_shoot(shoot_dir, sitter=SITTER, date=SHOOT_DATE, frame_size=DEMO_FRAME_SIZE)
    with workbench.db.unit_of_work() as session:
        for username, role in DEMO_USERS.items():
            if session.scalar(select(User).where(User.username == username)) is None:
                users.create_user(session=session, username=username, password=DEMO_PASSWORD, role=role, actor="demo")
        if session.scalar(select(Person).where(Person.code == SITTER)) is None:
            register_sitter(
                session=session, blobs=workbench.blobs, code=SITTER, document_dir=data_dir,
                legal_name="Demo Sitter", date_of_birth=dt.date(1990, 5, 17), release_signed_on=SHOOT_DATE,
                witness_name="Studio manager", actor="demo",
            )
    done = ingest_and_check(workbench=workbench, path=shoot_dir, actor="demo")
    print_summary(done.ingest)
    if (checked := done.qa) is not None:
        console.print(f"shot QA: {checked.passed} of {checked.shots} frames pass; {checked.queued_faces} faces queued for review")


@demo_app.callback(invoke_without_command=True)
def demo(
    launch: bool = typer.Option(True, "--launch/--no-launch", help="Open the workbench afterwards."),
    port: int = typer.Option(8501, help="Port for the workbench."),
) -> None:
    """Build the sample shoot, ingest it and launch the workbench on localhost."""
    with Workbench.open() as workbench:
        prepare_demo(workbench)
    console.print(f"demo logins: {', '.join(DEMO_USERS)} — password: {DEMO_PASSWORD}")
    if launch:
        console.print(f"workbench on http://127.0.0.1:{port}")
        app_command(port=port, address="127.0.0.1")
