"""The ORM data model. The schema changes only through Alembic migrations (migrations/)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, TypeVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Blob columns carry info={"blob": ...}: `likeness doctor` finds every reference through it.
# "required": the row is meaningless without the file; "optional": the file can be dropped.
Sha256 = Annotated[str, mapped_column(String(64))]
Timestamp = Annotated[dt.datetime, mapped_column(DateTime(timezone=True), default=utcnow)]


def blob_column(*, required: bool, **kwargs: Any) -> Any:
    return mapped_column(
        String(64), nullable=not required, info={"blob": "required" if required else "optional"}, **kwargs
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Role(enum.StrEnum):
    photographer = "photographer"
    labeler = "labeler"
    reviewer = "reviewer"
    admin = "admin"


class ShotStatus(enum.StrEnum):
    accepted = "accepted"
    quarantined = "quarantined"
    rejected = "rejected"


class Scope(enum.StrEnum):
    ai_training = "ai_training"
    commercial = "commercial"
    editorial = "editorial"


E = TypeVar("E", bound=enum.StrEnum)


class EnumText(TypeDecorator[E]):
    """A str enum stored as its value in a VARCHAR (the CHECK constraint lists the values), read
    back as the enum member: code compares members, never ``.value`` strings."""

    impl = String
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int) -> None:
        super().__init__(length)
        self.enum_type = enum_type

    def process_bind_param(self, value: E | str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self.enum_type(value)


def _in(column: str, values: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Person(Base):
    """A sitter, known everywhere by a pseudonymous code."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[Timestamp]

    releases: Mapped[list[Release]] = relationship(back_populates="person", order_by="Release.id")
    personal: Mapped[PersonalData | None] = relationship(uselist=False)


class PersonalData(Base):
    """Who the sitter is. Only the admin role may read this table."""

    __tablename__ = "personal_data"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    # The sitter's own statement from the release intake; never inferred.
    self_identified: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Release(Base):
    """A signed model release. Its validity for a shot depends on the shot's capture date."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    document_sha256: Mapped[str] = blob_column(required=True)
    document_name: Mapped[str] = mapped_column(String(255))
    document_type: Mapped[str] = mapped_column(String(50))
    signed_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    guardian_name: Mapped[str | None] = mapped_column(String(200))
    witness_name: Mapped[str | None] = mapped_column(String(200))
    revoked_on: Mapped[dt.date | None] = mapped_column(Date)
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]

    person: Mapped[Person] = relationship(back_populates="releases")


class Shoot(Base):
    """One studio session, described by the shoot folder's shoot.toml."""

    __tablename__ = "shoots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    shoot_date: Mapped[dt.date] = mapped_column(Date)
    studio: Mapped[str | None] = mapped_column(String(200))
    photographer: Mapped[str | None] = mapped_column(String(200))
    camera: Mapped[str | None] = mapped_column(String(200))
    lighting_preset: Mapped[str | None] = mapped_column(String(200))
    reference_frame: Mapped[str | None] = mapped_column(String(500))
    sitters: Mapped[list[Any]] = mapped_column(default=list)
    plan: Mapped[list[Any]] = mapped_column(default=list)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]


class Shot(Base):
    """One captured file, stored once by content hash."""

    __tablename__ = "shots"
    __table_args__ = (CheckConstraint(_in("status", ShotStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = blob_column(required=True, unique=True)
    shoot_id: Mapped[int] = mapped_column(ForeignKey("shoots.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    sitter_code: Mapped[str | None] = mapped_column(String(32))
    relative_path: Mapped[str] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(16))
    file_size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    orientation: Mapped[int] = mapped_column(default=1)
    make: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    lens: Mapped[str | None] = mapped_column(String(200))
    serial: Mapped[str | None] = mapped_column(String(100))
    iso: Mapped[float | None]
    shutter_s: Mapped[float | None]
    aperture: Mapped[float | None]
    focal_length_mm: Mapped[float | None]
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))
    capture_date: Mapped[dt.date] = mapped_column(Date)
    white_balance: Mapped[list[Any] | None] = mapped_column(JSON)
    exif: Mapped[dict[str, Any]] = mapped_column(default=dict)
    preview_sha256: Mapped[str | None] = blob_column(required=False)
    preview_source: Mapped[str | None] = mapped_column(String(16))
    face_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[ShotStatus] = mapped_column(EnumText(ShotStatus, 16))
    reason: Mapped[str | None] = mapped_column(String(40))
    reason_detail: Mapped[str | None] = mapped_column(Text)
    qa: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)

    faces: Mapped[list[Face]] = relationship(
        back_populates="shot", order_by="Face.face_index", cascade="all, delete-orphan", passive_deletes=True
    )
    shoot: Mapped[Shoot] = relationship(lazy="raise_on_sql")
    person: Mapped[Person | None] = relationship(lazy="raise_on_sql")


class Face(Base):
    """A face found in a shot: landmarks, pose, eye measures and the aligned crop."""

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("shot_id", "face_index", name="uq_faces_shot_face"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    face_index: Mapped[int]
    box: Mapped[list[Any]] = mapped_column(JSON)
    score: Mapped[float]
    landmarks: Mapped[list[Any]] = mapped_column(JSON)
    yaw: Mapped[float | None]
    pitch: Mapped[float | None]
    roll: Mapped[float | None]
    ear_right: Mapped[float | None]
    ear_left: Mapped[float | None]
    iris_right: Mapped[float | None]
    iris_left: Mapped[float | None]
    quad: Mapped[list[Any]] = mapped_column(JSON)
    crop_sha256: Mapped[str | None] = blob_column(required=False)
    crop_size: Mapped[int]
    qa: Mapped[dict[str, Any]] = mapped_column(default=dict)

    shot: Mapped[Shot] = relationship(back_populates="faces")


class IngestFailure(Base):
    """A file in a shoot folder that could not be ingested, with the reason. One row per path."""

    __tablename__ = "ingest_failures"
    __table_args__ = (UniqueConstraint("shoot_id", "relative_path", name="uq_ingest_failures_shoot_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shoot_id: Mapped[int] = mapped_column(ForeignKey("shoots.id", ondelete="CASCADE"), index=True)
    relative_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    last_seen_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)


class User(Base):
    """A person who logs in to the workbench."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", Role), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(EnumText(Role, 20))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[Timestamp]


class AuditEvent(Base):
    """Who did what to which row, kept forever."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[Timestamp]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Thumb(enum.StrEnum):
    up = "up"
    down = "down"


class DefectReason(enum.StrEnum):
    """Why a reviewer turned a face down."""

    closed_eyes = "closed_eyes"
    crossed_eyes = "crossed_eyes"
    crater = "crater"  # a hole or wound artifact
    background = "background"
    ears = "ears"
    headwear = "headwear"
    collar = "collar"
    teeth = "teeth"
    hands = "hands"
    asymmetry = "asymmetry"
    other = "other"


class ReviewItem(Base):
    """An image with a face waiting for reviewers: a shot's aligned crop now, generated faces later."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_sha256: Mapped[str] = blob_column(required=True, unique=True)
    source: Mapped[str] = mapped_column(String(20))
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    # What the automatic detector says; flagged items are shown to reviewers first.
    flag: Mapped[str | None] = mapped_column(String(30))
    flag_confidence: Mapped[float | None]
    measures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[Timestamp]

    votes: Mapped[list[Review]] = relationship(back_populates="item", cascade="all, delete-orphan", passive_deletes=True)


class Review(Base):
    """One reviewer's vote on one item; the database allows one per reviewer per item."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("item_id", "reviewer_id", name="uq_reviews_item_reviewer"),
        CheckConstraint(_in("thumb", Thumb), name="thumb"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    thumb: Mapped[Thumb] = mapped_column(EnumText(Thumb, 4))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)

    item: Mapped[ReviewItem] = relationship(back_populates="votes")


class LabelProject(Base):
    """A Label Studio project that holds our faces: where it is, its taxonomy and the pull cursor."""

    __tablename__ = "label_projects"
    __table_args__ = (UniqueConstraint("server_url", "ls_project_id", name="uq_label_projects_server_project"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_url: Mapped[str] = mapped_column(String(300))
    ls_project_id: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    config_sha256: Mapped[str] = mapped_column(String(64))
    # Label Studio's own clock: the newest task change that our database has fully taken in.
    pull_cursor: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)


class LabelTask(Base):
    """One face pushed to a project. A row without `ls_task_id` is a push that was not confirmed."""

    __tablename__ = "label_tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "face_id", name="uq_label_tasks_project_face"),
        UniqueConstraint("project_id", "ls_task_id", name="uq_label_tasks_project_task"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("label_projects.id", ondelete="CASCADE"), index=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    ls_task_id: Mapped[int | None]
    created_at: Mapped[Timestamp]


class LabelState(enum.StrEnum):
    current = "current"
    superseded = "superseded"  # an edited annotation replaced it
    retracted = "retracted"    # the annotation was deleted


class Label(Base):
    """One attribute value for a face, from a labeler (an annotation) or a model (a prediction).

    Rows are never overwritten: an edit supersedes, a deletion retracts. A value our taxonomy does
    not know keeps `known` False and the raw result item, so it is reported instead of dropped.
    """

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint(_in("state", LabelState), name="state"),
        Index("ix_labels_face_attribute_state", "face_id", "attribute", "state"),
        Index("ix_labels_annotation", "ls_annotation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    attribute: Mapped[str] = mapped_column(String(40))
    value: Mapped[str | None] = mapped_column(String(80))
    known: Mapped[bool] = mapped_column(default=True)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(12))  # "annotation" or "prediction"
    annotator: Mapped[str] = mapped_column(String(200))  # Label Studio user, or the model version
    ls_task_id: Mapped[int | None]
    ls_annotation_id: Mapped[int | None]
    ls_updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[LabelState] = mapped_column(EnumText(LabelState, 12), default=LabelState.current)
    created_at: Mapped[Timestamp]
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Split(enum.StrEnum):
    train = "train"
    val = "val"


class DatasetSnapshot(Base):
    """An immutable, balanced training set, named by the SHA-256 of its spec and member list.

    Only the taint can change after the build: a revoked release marks the snapshot (and what was
    trained on it) with the release and the reason."""

    __tablename__ = "dataset_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)           # the canonical spec
    spec_text: Mapped[str] = mapped_column(Text)                 # the TOML as written
    size: Mapped[int]
    resolution: Mapped[int]
    label_encoding: Mapped[list[Any]] = mapped_column(default=list)  # attribute → slice of the label vector
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)     # balance, shortfall, split, exclusions
    built_on: Mapped[dt.date] = mapped_column(Date)              # the day consent was checked for the build
    built_by: Mapped[str] = mapped_column(String(100))
    tainted: Mapped[bool] = mapped_column(default=False)
    taint: Mapped[list[Any]] = mapped_column(default=list)       # [{release_id, person, reason, at}]
    created_at: Mapped[Timestamp]

    members: Mapped[list[SnapshotMember]] = relationship(
        back_populates="snapshot", order_by="SnapshotMember.position", lazy="raise_on_sql")


class SnapshotMember(Base):
    """One face of a snapshot, with what it was chosen as. The crop is kept by hash, so the
    member survives a re-analysis that replaces the face row."""

    __tablename__ = "dataset_snapshot_members"
    __table_args__ = (
        UniqueConstraint("snapshot_id", "position", name="uq_dataset_snapshot_members_snapshot_position"),
        CheckConstraint(_in("split", Split), name="split"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("dataset_snapshots.id"), index=True)
    position: Mapped[int]                                         # order in the export
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL"), index=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    crop_sha256: Mapped[str] = blob_column(required=True)
    split: Mapped[Split] = mapped_column(EnumText(Split, 8))
    label: Mapped[list[Any]] = mapped_column(default=list)       # the conditioning vector
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # consensus values it was chosen for

    snapshot: Mapped[DatasetSnapshot] = relationship(back_populates="members")


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    finished = "finished"
    failed = "failed"
    stopped = "stopped"
    interrupted = "interrupted"  # its process died (SIGKILL, crash, reboot) while it was running


class TrainingRun(Base):
    """One StyleGAN training run: its settings, where it got to and how it ended."""

    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(_in("status", RunStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[RunStatus] = mapped_column(EnumText(RunStatus, 12), default=RunStatus.queued)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # TrainConfig.to_dict()
    network: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the resolved NetworkConfig, once known
    dataset_path: Mapped[str] = mapped_column(Text)
    dataset_fingerprint: Mapped[str | None] = mapped_column(String(64))  # set once the loop has read the data
    run_dir: Mapped[str] = mapped_column(Text)
    kimg: Mapped[float] = mapped_column(default=0.0)
    total_kimg: Mapped[float]
    augment_p: Mapped[float] = mapped_column(default=0.0)
    last_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The lease of the process training it (training/runs.py): set while it runs, cleared when it ends.
    lease_pid: Mapped[int | None]
    lease_host: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by `likeness train stop` / the page; the process training the run honours it at its next step.
    stop_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The dataset snapshot it trains on; None with `external` for data from outside (no consent lineage).
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_snapshots.id"), index=True)
    external: Mapped[bool] = mapped_column(default=False)
    # The checkpoint of another run it was resumed or fine-tuned from (None: trained from scratch).
    parent_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", use_alter=True), index=True)
    # Set when a release behind its data is revoked; `taint` says which and why.
    tainted: Mapped[bool] = mapped_column(default=False)
    taint: Mapped[list[Any]] = mapped_column(default=list)       # [{release_id, person, reason, at}]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)

    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", order_by="Checkpoint.kimg", foreign_keys="Checkpoint.run_id")


class Checkpoint(Base):
    """A network snapshot of a run, stored as a blob, with the sample grid written beside it."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "kimg", name="uq_checkpoints_run_kimg"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"), index=True)
    kimg: Mapped[float]
    file_sha256: Mapped[str] = blob_column(required=True, index=True)
    file_name: Mapped[str] = mapped_column(String(255))  # the snapshot's name in the run folder
    grid_sha256: Mapped[str | None] = blob_column(required=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when a release behind the run's data is revoked: nothing may be generated from it.
    tainted: Mapped[bool] = mapped_column(default=False)
    taint: Mapped[list[Any]] = mapped_column(default=list)       # [{release_id, person, reason, at}]
    created_at: Mapped[Timestamp]

    run: Mapped[TrainingRun] = relationship(back_populates="checkpoints", foreign_keys=[run_id])
    aliases: Mapped[list[CheckpointAlias]] = relationship(
        back_populates="checkpoint", order_by="CheckpointAlias.name", lazy="raise_on_sql")


class CheckpointAlias(Base):
    """A name (`production`, `candidate`, or free-form) pointing at one checkpoint at a time.

    Moving an alias rewrites its row; the audit trail keeps every move (model_registry/aliases.py)."""

    __tablename__ = "checkpoint_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"), index=True)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[Timestamp]

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="aliases", lazy="raise_on_sql")


class GeneratedImage(Base):
    """A face generated from a checkpoint; the recipe (seed, psi, label, noise) is unique. It is
    tainted exactly when its checkpoint is: it holds nothing of anyone beyond what that learned."""

    __tablename__ = "generated_images"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "seed", "psi", "label_key", "noise_mode", name="uq_generated_images_recipe"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"), index=True)
    seed: Mapped[int]  # 0 .. 2**31 - 1
    psi: Mapped[float]
    label: Mapped[Any | None] = mapped_column(JSON)  # a class index or a vector; None when unconditional
    label_key: Mapped[str] = mapped_column(String(64))  # "" or the SHA-256 of the label's canonical JSON
    noise_mode: Mapped[str] = mapped_column(String(8))
    image_sha256: Mapped[str] = blob_column(required=True, index=True)
    # The automatic checks: {name: {value, threshold, flagged, note}} (qa.generated).
    checks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the image shows: {"label": {attribute: value} decoded from the conditioning label,
    # "measured": {monk_tone, smile, mouth_open, yaw, pitch, roll}, "mismatch": [attribute, ...]}.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The learned filter's call: accept or reject, or None while a person has to decide.
    decision: Mapped[str | None] = mapped_column(String(8), index=True)
    decision_score: Mapped[float | None]          # the filter's probability that the face is good
    decision_reason: Mapped[str | None] = mapped_column(Text)
    filter_id: Mapped[int | None] = mapped_column(ForeignKey("face_filters.id"), index=True)
    created_at: Mapped[Timestamp]

    checkpoint: Mapped[Checkpoint] = relationship(lazy="raise_on_sql")


class FaceFilter(Base):
    """A version of the filter learned from reviewers' votes on generated faces: the model (a
    blob), the features it reads, its two thresholds calibrated on held-out votes, and how it did
    there. The active version decides new faces; each image records the version that decided it."""

    __tablename__ = "face_filters"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    model_sha256: Mapped[str] = blob_column(required=True)
    features: Mapped[list[Any]] = mapped_column(default=list)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)   # {"reject": p_low, "accept": p_high}
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)      # coverage, precision per decision, votes
    active: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[Timestamp]


class SignInSession(Base):
    """A browser's sign-in, kept across reloads by an HTTP-only cookie (likeness.signin).

    Only hashes are stored: the one-time ticket the page trades for the cookie, then the cookie's
    token. Signing out deletes the row; a deactivated account's rows are deleted when seen."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SignInThrottle(Base):
    """Failed sign-ins in a row for one account (`account:<name>`) or one client (`client:<ip>`),
    and until when further attempts are refused."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
