"""Checkpoint aliases: a name (`production`, `candidate`, or free-form) that points at one
checkpoint at a time, the way MLflow's model aliases replaced its stages.

Every change (set, move, remove) is written to the audit trail in the same transaction, with
who and when; `history` reads it back, newest first. A tainted checkpoint (a release behind its
data was revoked) cannot be given an alias; an alias it already holds can be moved or removed.
A reference to a checkpoint (`resolve`) is its id (`17` or `#17`) or an alias name, which is
why alias names start with a letter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likeness import audit
from likeness.errors import ConfigError, ConsentViolation, InvalidInput, NotFound
from likeness.models import AuditEvent, Checkpoint, CheckpointAlias, utcnow

__all__ = [
    "ALIAS_PATTERN", "CANDIDATE", "PRODUCTION", "Alias", "AliasChange", "check_alias_name", "history", "list_aliases",
    "remove_alias", "resolve", "set_alias",
]

PRODUCTION = "production"       # what `likeness generate` uses by default
CANDIDATE = "candidate"
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
SUBJECT_TYPE = "checkpoint_alias"
ACTIONS = {"set": "registry.alias.set", "move": "registry.alias.move", "remove": "registry.alias.remove"}


@dataclasses.dataclass(frozen=True)
class Alias:
    name: str
    checkpoint_id: int
    set_by: str
    set_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class AliasChange:
    """One audited change of an alias: set (new), move (to another checkpoint) or remove."""

    at: dt.datetime
    actor: str
    kind: str                           # "set", "move" or "remove"
    alias: str
    checkpoint_id: int | None           # where it points after the change (None: removed)
    previous_checkpoint_id: int | None  # where it pointed before (None: it was new)


def check_alias_name(name: str) -> str:
    """`name` if it can be an alias; InvalidInput otherwise."""
    if not isinstance(name, str) or not ALIAS_PATTERN.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a valid alias name",
                           hint="an alias is 1 to 64 lower-case letters, digits, '.', '_' or '-', "
                                "starting with a letter (e.g. production, candidate, portrait-v2)")
    return name


def set_alias(*, session: Session, name: str, checkpoint_id: int, actor: str) -> AliasChange | None:
    """Point alias `name` at `checkpoint_id` (creating it, or moving it from another checkpoint),
    audited. None when it already points there (nothing changes, nothing is recorded).
    InvalidInput for a bad name, NotFound for an unknown checkpoint, ConsentViolation for a
    tainted one."""
    check_alias_name(name)
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness registry list` lists the checkpoints")
    if checkpoint.tainted:
        raise ConsentViolation(f"checkpoint #{checkpoint_id} is tainted ({taint_reason(checkpoint.taint)}): "
                               f"it cannot be promoted to {name!r}",
                               hint="promote a checkpoint trained without the revoked release")
    row = session.scalar(select(CheckpointAlias).where(CheckpointAlias.name == name).with_for_update())
    now = utcnow()
    if row is None:
        try:
            with session.begin_nested():
                session.add(CheckpointAlias(name=name, checkpoint_id=checkpoint_id, set_by=actor, set_at=now))
        except IntegrityError as exc:
            raise ConfigError(f"alias {name!r} is being set by someone else at the same time", hint="try again") from exc
        return _record(session, actor=actor, kind="set", alias=name, checkpoint_id=checkpoint_id, previous=None, at=now)
    if row.checkpoint_id == checkpoint_id:
        return None
    previous = row.checkpoint_id
    row.checkpoint_id, row.set_by, row.set_at = checkpoint_id, actor, now
    return _record(session, actor=actor, kind="move", alias=name, checkpoint_id=checkpoint_id, previous=previous,
                   at=now)


def remove_alias(*, session: Session, name: str, actor: str) -> AliasChange:
    """Remove alias `name`, audited; NotFound when no checkpoint has it."""
    check_alias_name(name)
    row = session.scalar(select(CheckpointAlias).where(CheckpointAlias.name == name).with_for_update())
    if row is None:
        raise NotFound(f"no checkpoint has the alias {name!r}", hint="`likeness registry list` shows the aliases")
    previous = row.checkpoint_id
    session.delete(row)
    return _record(session, actor=actor, kind="remove", alias=name, checkpoint_id=None, previous=previous,
                   at=utcnow())


def resolve(*, session: Session, ref: str) -> int:
    """The checkpoint id that `ref` names: an id (`17`, `#17`) or an alias. NotFound for an unknown
    id or alias, InvalidInput for something that can be neither."""
    text = ref.strip()
    digits = text.removeprefix("#")
    if digits.isdigit():
        checkpoint_id = int(digits)
        if session.get(Checkpoint, checkpoint_id) is None:
            raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness registry list` lists the checkpoints")
        return checkpoint_id
    check_alias_name(text)
    found = session.scalar(select(CheckpointAlias.checkpoint_id).where(CheckpointAlias.name == text))
    if found is None:
        hint = ("promote one with `likeness registry promote CKPT production`" if text == PRODUCTION
                else "`likeness registry list` shows the aliases")
        raise NotFound(f"no checkpoint has the alias {text!r}", hint=hint)
    return found


def list_aliases(*, session: Session) -> list[Alias]:
    """Every alias, by name."""
    rows = session.scalars(select(CheckpointAlias).order_by(CheckpointAlias.name))
    return [Alias(name=r.name, checkpoint_id=r.checkpoint_id, set_by=r.set_by, set_at=r.set_at) for r in rows]


def history(*, session: Session, alias: str | None = None, checkpoint_id: int | None = None) -> list[AliasChange]:
    """Audited alias changes, newest first: of one alias, of those touching one checkpoint (to or
    from it), or all."""
    query = select(AuditEvent).where(AuditEvent.subject_type == SUBJECT_TYPE)
    if alias is not None:
        query = query.where(AuditEvent.subject_id == alias)
    changes = [_change(e) for e in session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))]
    if checkpoint_id is not None:
        changes = [c for c in changes if checkpoint_id in (c.checkpoint_id, c.previous_checkpoint_id)]
    return changes


def taint_reason(taint: list[Any] | None) -> str:
    """The taint entries ({release_id, person, reason, at}) in a few words."""
    parts = []
    for entry in taint or []:
        if not isinstance(entry, dict):
            continue
        who = " ".join(p for p in (str(entry.get("person") or ""), _release(entry.get("release_id"))) if p)
        parts.append(f"{who}: {entry['reason']}" if entry.get("reason") else who)
    return "; ".join(p for p in parts if p) or "a release behind its training data was revoked"


def _release(release_id: object) -> str:
    return f"release #{release_id}" if release_id is not None else ""


def _record(session: Session, *, actor: str, kind: str, alias: str, checkpoint_id: int | None,
            previous: int | None, at: dt.datetime) -> AliasChange:
    event = audit.record(session=session, actor=actor, action=ACTIONS[kind], subject_type=SUBJECT_TYPE,
                         subject_id=alias, alias=alias, checkpoint_id=checkpoint_id, previous_checkpoint_id=previous)
    event.at = at
    session.flush()
    return _change(event)


def _change(event: AuditEvent) -> AliasChange:
    details = dict(event.details or {})
    kind = next((k for k, action in ACTIONS.items() if action == event.action), event.action)
    return AliasChange(at=event.at, actor=event.actor, kind=kind, alias=str(details.get("alias", event.subject_id)),
                       checkpoint_id=details.get("checkpoint_id"),
                       previous_checkpoint_id=details.get("previous_checkpoint_id"))
