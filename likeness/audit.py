"""The audit trail: one row per action that changes what a person is allowed to do or see."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from likeness.models import AuditEvent


def record(
    *, session: Session, actor: str, action: str, subject_type: str, subject_id: object, **details: Any
) -> AuditEvent:
    event = AuditEvent(
        actor=actor, action=action, subject_type=subject_type, subject_id=str(subject_id), details=details
    )
    session.add(event)
    return event
