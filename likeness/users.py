"""Workbench users: accounts, roles and password checks (argon2id)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness import audit
from likeness.errors import InvalidInput, NotFound
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


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}", hint=f"choose one of {choices}") from None


def _check_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password for {username} is shorter than {MIN_PASSWORD_LENGTH} characters")


def create_user(*, session: Session, username: str, password: str, role: Role | str, actor: str = "cli") -> User:
    username = username.strip()
    if not username:
        raise InvalidInput("a username cannot be empty")
    role = _role(role)
    _check_password(username, password)
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


# -- managing accounts (admins: the Users page and `likeness user ...`) ---------------------------

def _get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"no user {username.strip()!r}", hint="see `likeness user list`")
    return user


def _keep_an_admin(session: Session, user: User, change: str) -> None:
    """Refuse a change that would leave no active admin (nobody could manage accounts then)."""
    if Role(user.role) is not Role.admin or not user.active:
        return
    others = session.scalar(
        select(func.count()).select_from(User)
        .where(User.role == Role.admin, User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise InvalidInput(f"cannot {change}: it is the last active admin", hint="make another admin first")


def reset_password(*, session: Session, username: str, password: str, actor: str) -> UserRow:
    """Give the account a new password (the old one stops working at once)."""
    user = _get_user(session, username)
    _check_password(user.username, password)
    user.password_hash = _hasher.hash(password)
    audit.record(session=session, actor=actor, action="user.reset_password", subject_type="user", subject_id=user.id,
                 username=user.username)
    session.flush()
    return UserRow(user.username, Role(user.role), bool(user.active))


def set_active(*, session: Session, username: str, active: bool, actor: str) -> UserRow:
    """Deactivate or reactivate an account. A deactivated user is signed out on their next
    request (the app re-reads `active_role` on every rerun) and cannot sign in again."""
    user = _get_user(session, username)
    if bool(user.active) is active:
        state = "active" if active else "deactivated"
        raise InvalidInput(f"user {user.username} is already {state}")
    if not active:
        _keep_an_admin(session, user, f"deactivate {user.username}")
    user.active = active
    audit.record(session=session, actor=actor, action="user.activate" if active else "user.deactivate",
                 subject_type="user", subject_id=user.id, username=user.username)
    session.flush()
    return UserRow(user.username, Role(user.role), bool(user.active))


def set_role(*, session: Session, username: str, role: Role | str, actor: str) -> UserRow:
    """Change an account's role; it takes effect on the user's next request."""
    user = _get_user(session, username)
    new_role = _role(role)
    old_role = Role(user.role)
    if new_role is old_role:
        raise InvalidInput(f"user {user.username} already has the role {new_role.value}")
    if old_role is Role.admin:
        _keep_an_admin(session, user, f"change the role of {user.username}")
    user.role = new_role
    audit.record(session=session, actor=actor, action="user.role", subject_type="user", subject_id=user.id,
                 username=user.username, old_role=old_role.value, role=new_role.value)
    session.flush()
    return UserRow(user.username, new_role, bool(user.active))
