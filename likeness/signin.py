"""Sign-ins that survive a reload, and the throttle on failed ones.

Streamlit 1.60 has no public way to set an HTTP-only cookie from a script, so the cookie comes
from two small routes that `streamlit_app.py` adds to the app's own Starlette server (st.App):

1. The sign-in form checks the password in the script (`attempt`), then `start` records a
   session row holding the hash of a one-time ticket that lives two minutes.
2. The page POSTs that ticket to `/_likeness/session` (`session_route`); the route trades it,
   once, for a random token, stores the token's hash and answers with
   `Set-Cookie: likeness_session=…; HttpOnly; SameSite=Lax` that expires with the row (12 h by
   default, LIKENESS_SESSION_HOURS).
3. A new browser session (a reload, a bookmarked URL) reads the cookie through
   `st.context.cookies` and `resume_token` finds its row; every rerun checks the row again
   (`resume`), so a signed-out, expired or deactivated sign-in ends at once.
4. Signing out deletes the row; `/_likeness/signout` also drops the cookie from the browser.

Only hashes are stored, so a copy of the database signs nobody in. Failed sign-ins are audited
(`user.sign_in_failed`, `user.sign_in_locked`; never the password) and counted per account and
per client address: past a few failures in a row further attempts are refused for a growing
while (`lock_seconds`), even with the right password.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from likeness import audit
from likeness.db import conflict_insert
from likeness.models import AuditEvent, Role, SignInSession, SignInThrottle, User
from likeness.users import SignedIn, authenticate

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from likeness.db import Database

SESSION_COOKIE = "likeness_session"
SESSION_ROUTE = "/_likeness/session"
SIGNOUT_ROUTE = "/_likeness/signout"
TICKET_LIFETIME = dt.timedelta(minutes=2)

# An account is locked after this many failures in a row; a client address (every browser on
# 127.0.0.1 shares one) after more, across accounts.
ACCOUNT_FREE_FAILURES = 5
CLIENT_FREE_FAILURES = 20
FIRST_LOCK_SECONDS = 30.0
MAX_LOCK_SECONDS = 15 * 60.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)  # SQLite: naive UTC


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# -- sessions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    session_id: int
    ticket: str


def start(*, session: Session, user: SignedIn, hours: float, now: dt.datetime | None = None) -> Started:
    """A new sign-in session for `user`, lasting `hours`, with the one-time ticket for its cookie."""
    now = now or _now()
    ticket = secrets.token_urlsafe(32)
    row = SignInSession(
        user_id=user.user_id, ticket_hash=_digest(ticket), ticket_expires_at=now + TICKET_LIFETIME,
        created_at=now, expires_at=now + dt.timedelta(hours=hours),
    )
    session.add(row)
    session.flush()
    return Started(session_id=row.id, ticket=ticket)


def redeem(*, session: Session, ticket: str, now: dt.datetime | None = None) -> tuple[str, int] | None:
    """Trade a ticket, once, for the cookie's token; returns (token, seconds it lives) or None."""
    now = now or _now()
    row = session.scalar(select(SignInSession).where(SignInSession.ticket_hash == _digest(ticket)))
    if row is None:
        return None
    row.ticket_hash = None  # one use only, whatever happens next
    expires_at = _aware(row.expires_at)
    if row.ticket_expires_at is None or _aware(row.ticket_expires_at) < now or expires_at <= now:
        return None
    token = secrets.token_urlsafe(32)
    row.token_hash = _digest(token)
    row.ticket_expires_at = None
    return token, int((expires_at - now).total_seconds())


def _signed_in(session: Session, row: SignInSession | None, now: dt.datetime) -> SignedIn | None:
    if row is None:
        return None
    if _aware(row.expires_at) <= now:
        session.delete(row)
        return None
    user = session.get(User, row.user_id)
    deactivated_since = user is not None and session.scalar(select(AuditEvent.id).where(
        AuditEvent.subject_type == "user", AuditEvent.subject_id == str(user.id),
        AuditEvent.action == "user.deactivate", AuditEvent.at >= row.created_at).limit(1)) is not None
    if user is None or not user.active or deactivated_since:
        # Deactivation ends every sign-in of the account, not just this one, even when the
        # account was reactivated before this session was next seen.
        session.execute(delete(SignInSession).where(SignInSession.user_id == row.user_id))
        return None
    return SignedIn(user_id=user.id, username=user.username, role=Role(user.role))


def resume(*, session: Session, session_id: int, now: dt.datetime | None = None) -> SignedIn | None:
    """Who holds sign-in session `session_id` now (role re-read), or None when it has ended."""
    return _signed_in(session, session.get(SignInSession, session_id), now or _now())


def resume_token(*, session: Session, token: str, now: dt.datetime | None = None) -> tuple[SignedIn, int] | None:
    """The user and session id behind a cookie's token, or None when it is unknown or has ended."""
    row = session.scalar(select(SignInSession).where(SignInSession.token_hash == _digest(token)))
    user = _signed_in(session, row, now or _now())
    return (user, row.id) if user is not None and row is not None else None


def end(*, session: Session, session_id: int | None = None, token: str | None = None) -> None:
    """Sign out: the session (by id or by its cookie's token) no longer signs anyone in."""
    if session_id is not None:
        session.execute(delete(SignInSession).where(SignInSession.id == session_id))
    if token:
        session.execute(delete(SignInSession).where(SignInSession.token_hash == _digest(token)))


# -- throttle --------------------------------------------------------------------------------

def lock_seconds(failures: int, free: int) -> float:
    """How long a key is locked after `failures` failures in a row: nothing before `free`, then
    FIRST_LOCK_SECONDS doubling with each further failure, at most MAX_LOCK_SECONDS."""
    if failures < free:
        return 0.0
    return min(FIRST_LOCK_SECONDS * 2 ** min(failures - free, 32), MAX_LOCK_SECONDS)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one sign-in attempt: `user` when it worked, else why not."""

    user: SignedIn | None
    retry_at: dt.datetime | None = None
    retry_in_s: float = 0.0

    @property
    def message(self) -> str:
        if self.user is not None:
            return ""
        if self.retry_at is None:
            return "Wrong username or password."  # never say which of the two was wrong
        minutes, seconds = divmod(max(1, round(self.retry_in_s)), 60)
        wait = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
        return (f"Too many failed sign-ins for this account or computer: try again in {wait} "
                f"(after {self.retry_at:%H:%M:%S} UTC).")


def _keys(username: str, client: str | None) -> list[tuple[str, int]]:
    keys = [(f"account:{username}"[:200], ACCOUNT_FREE_FAILURES)]
    if client:
        keys.append((f"client:{client}"[:200], CLIENT_FREE_FAILURES))
    return keys


def _throttle_row(session: Session, key: str, now: dt.datetime) -> SignInThrottle:
    # Insert-or-get, race-safe when two attempts for the same key arrive together.
    session.execute(conflict_insert(session, SignInThrottle).values(
        key=key, failures=0, last_failure_at=now, locked_until=None).on_conflict_do_nothing())
    row = session.scalar(select(SignInThrottle).where(SignInThrottle.key == key).with_for_update())
    assert row is not None
    return row


def attempt(
    *, session: Session, username: str, password: str, client: str | None, now: dt.datetime | None = None
) -> Attempt:
    """Check a sign-in unless its account or client is locked; audit and count every failure."""
    now = now or _now()
    username = username.strip()
    keys = _keys(username, client)
    details = {"username": username[:100], "client": client}
    locks = [_aware(row.locked_until) for row in session.scalars(
        select(SignInThrottle).where(SignInThrottle.key.in_([key for key, _ in keys])))
        if row.locked_until is not None and _aware(row.locked_until) > now]
    if locks:
        lock_end = max(locks)
        audit.record(session=session, actor=client or "unknown", action="user.sign_in_locked",
                     subject_type="user", subject_id=username[:100], retry_at=lock_end.isoformat(), **details)
        return Attempt(user=None, retry_at=lock_end, retry_in_s=(lock_end - now).total_seconds())

    user = authenticate(session=session, username=username, password=password)
    if user is not None:
        session.execute(delete(SignInThrottle).where(SignInThrottle.key == keys[0][0]))
        return Attempt(user=user)

    retry_at: dt.datetime | None = None
    failures = {}
    for key, free in keys:
        row = _throttle_row(session, key, now)
        row.failures += 1
        row.last_failure_at = now
        failures[key.split(":", 1)[0]] = row.failures
        wait = lock_seconds(row.failures, free)
        if wait:
            row.locked_until = now + dt.timedelta(seconds=wait)
            retry_at = max(retry_at or row.locked_until, row.locked_until)
    audit.record(session=session, actor=client or "unknown", action="user.sign_in_failed",
                 subject_type="user", subject_id=username[:100], failures=failures,
                 retry_at=retry_at.isoformat() if retry_at else None, **details)
    return Attempt(user=None, retry_at=retry_at, retry_in_s=(retry_at - now).total_seconds() if retry_at else 0.0)


# -- the routes that set and drop the cookie -------------------------------------------------

def _same_origin(request: Request) -> bool:
    """Refuse cross-site POSTs (a page elsewhere cannot sign this browser in or out)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def routes(database: Callable[[], Database] | None = None, *, base_path: str = "") -> list[BaseRoute]:
    """The two cookie routes, for st.App(routes=…). `database` opens the app's database (the
    LIKENESS_* settings by default); it is opened on the first request and kept."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    @functools.cache
    def opened() -> Database:
        if database is not None:
            return database()
        from likeness.config import Settings
        from likeness.db import Database

        return Database(Settings().resolved_database_url)

    def _redeem(ticket: str) -> tuple[str, int] | None:
        with opened().unit_of_work() as session:
            return redeem(session=session, ticket=ticket)

    def _end(token: str) -> None:
        with opened().unit_of_work() as session:
            end(session=session, token=token)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    async def session_route(request: Request) -> Response:
        if not _same_origin(request):
            return Response("cross-site request refused", status_code=403)
        ticket = (await request.body()).decode("ascii", "replace").strip()[:200]
        granted = await run_in_threadpool(_redeem, ticket) if ticket else None
        if granted is None:
            return Response("unknown or used sign-in ticket", status_code=403)
        token, max_age = granted
        response = Response(status_code=204)
        response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True,
                            samesite="lax", secure=secure(request))
        response.headers["Cache-Control"] = "no-store"
        return response

    async def signout_route(request: Request) -> Response:
        if not _same_origin(request):
            return Response("cross-site request refused", status_code=403)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await run_in_threadpool(_end, token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure(request))
        return response

    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    return [Route(base + SESSION_ROUTE, session_route, methods=["POST"]),
            Route(base + SIGNOUT_ROUTE, signout_route, methods=["POST"])]
