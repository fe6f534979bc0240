"""Workbench users: accounts, roles and password checks (argon2id)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from likeness import audit
from likeness.errors import InvalidInput
from likeness.models import Role, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class UserRow:
    username: str
    role: Role
    active: bool


def list_users(*, session: Session) -> list[UserRow]:
    """Every account by username, deactivated ones included."""
    return [UserRow(username, Role(role), bool(active))
            for username, role, active in session.execute(select(User.username, User.role, User.active).order_by(User.username))]


def active_role(*, session: Session, user_id: int) -> Role | None:
    """The user's role now, or None when the account is gone or deactivated."""
    role = session.scalar(select(User.role).where(User.id == user_id, User.active.is_(True)))
    return Role(role) if role is not None else None


@dataclass(frozen=True)
class SignedIn:
    """What the UI keeps about a logged-in user (no ORM object crosses reruns)."""

    user_id: int
    username: str
    role: Role


def create_user(*, session: Session, username: str, password: str, role: Role | str, actor: str = "cli") -> User:
    username = username.strip()
    if not username:
        raise InvalidInput("a username cannot be empty")
    try:
        role = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}", hint=f"choose one of {choices}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password for {username} is shorter than {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise InvalidInput(f"user {username} already exists")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session=session, actor=actor, action="user.create", subject_type="user", subject_id=user.id, role=role)
    return user


def authenticate(*, session: Session, username: str, password: str) -> SignedIn | None:
    """The signed-in identity, or None for a wrong name or password (never says which)."""
    user = session.scalar(select(User).where(User.username == username.strip(), User.active.is_(True)))
    if user is None:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return SignedIn(user_id=user.id, username=user.username, role=Role(user.role))
