"""Sign-ins: sessions kept across reloads by an HTTP-only cookie, the throttle on failed sign-ins
and their audit rows. Library checks on both databases with an injected clock; the reload and
the bookmarked URL in a real browser."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from likeness import signin, users
from likeness.models import AuditEvent, Role, SignInSession
from likeness.workbench import Workbench
from tests.factories.app import sign_in as app_sign_in
from tests.factories.app import start
from tests.factories.people import PASSWORD, add_user, user_id
from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, sign_in, wait_for_session_cookie, wait_until_idle

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
WRONG = "not-the-password-123"


def _try(wb: Workbench, username: str, password: str, *, at: dt.datetime, client: str = "10.0.0.7") -> signin.Attempt:
    with wb.db.unit_of_work() as session:
        return signin.attempt(session=session, username=username, password=password, client=client, now=at)


def _audit(wb: Workbench, action: str) -> list[AuditEvent]:
    with wb.db.unit_of_work() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# -- throttle --------------------------------------------------------------------------------

def test_the_wait_grows_with_each_failure_and_has_a_ceiling() -> None:
    free = signin.ACCOUNT_FREE_FAILURES
    assert [signin.lock_seconds(n, free) for n in range(free)] == [0.0] * free
    assert [signin.lock_seconds(free + k, free) for k in range(4)] == [30.0, 60.0, 120.0, 240.0]
    assert signin.lock_seconds(10_000, free) == signin.MAX_LOCK_SECONDS


def test_twenty_wrong_passwords_lock_the_account_and_the_right_one_is_refused_until_the_wait_ends(
    workbench: Workbench,
) -> None:
    add_user(workbench, "ana", Role.photographer)
    outcomes = [_try(workbench, "ana", WRONG, at=T0 + dt.timedelta(seconds=i)) for i in range(20)]
    assert all(o.user is None for o in outcomes)
    assert [o.retry_at is None for o in outcomes[:4]] == [True] * 4
    locked_at = T0 + dt.timedelta(seconds=4)  # the fifth failure
    assert outcomes[4].retry_at == locked_at + dt.timedelta(seconds=30)

    refused = _try(workbench, "ana", PASSWORD, at=T0 + dt.timedelta(seconds=21))
    assert refused.user is None
    assert refused.retry_at == locked_at + dt.timedelta(seconds=30)
    assert "try again in 13 s" in refused.message and "09:00:34 UTC" in refused.message

    works = _try(workbench, "ana", PASSWORD, at=locked_at + dt.timedelta(seconds=30))
    assert works.user is not None and works.user.username == "ana"
    # A success clears the account's count: the next failure starts again from one.
    assert _try(workbench, "ana", WRONG, at=locked_at + dt.timedelta(seconds=31)).retry_at is None


def test_a_locked_account_stays_locked_longer_after_the_next_failure(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    for i in range(signin.ACCOUNT_FREE_FAILURES):
        _try(workbench, "ana", WRONG, at=T0 + dt.timedelta(seconds=i))
    after_lock = T0 + dt.timedelta(seconds=4 + 30)
    again = _try(workbench, "ana", WRONG, at=after_lock)
    assert again.retry_at == after_lock + dt.timedelta(seconds=60)


def test_one_client_guessing_across_accounts_is_locked(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    for i in range(signin.CLIENT_FREE_FAILURES):
        _try(workbench, f"guess{i}", WRONG, at=T0 + dt.timedelta(seconds=i))
    from_there = _try(workbench, "ana", PASSWORD, at=T0 + dt.timedelta(seconds=25))
    assert from_there.user is None and from_there.retry_at is not None
    elsewhere = _try(workbench, "ana", PASSWORD, at=T0 + dt.timedelta(seconds=25), client="10.0.0.8")
    assert elsewhere.user is not None


def test_every_failure_is_audited_without_the_password(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    for i in range(signin.ACCOUNT_FREE_FAILURES):
        _try(workbench, "ana", WRONG, at=T0 + dt.timedelta(seconds=i))
    _try(workbench, "nobody", WRONG, at=T0)
    _try(workbench, "ana", PASSWORD, at=T0 + dt.timedelta(seconds=10))  # refused: locked

    failed = _audit(workbench, "user.sign_in_failed")
    assert [(e.subject_id, e.details["username"]) for e in failed] == [("ana", "ana")] * 5 + [("nobody", "nobody")]
    assert [e.details["failures"]["account"] for e in failed] == [1, 2, 3, 4, 5, 1]
    assert all(e.actor == "10.0.0.7" and e.details["client"] == "10.0.0.7" for e in failed)
    locked = _audit(workbench, "user.sign_in_locked")
    assert len(locked) == 1 and locked[0].details["retry_at"] == (T0 + dt.timedelta(seconds=34)).isoformat()
    for event in failed + locked:
        assert WRONG not in repr(event.details) and PASSWORD not in repr(event.details)


def test_the_app_audits_a_wrong_password_and_shows_when_to_retry(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.photographer)
    at = start()
    for _ in range(signin.ACCOUNT_FREE_FAILURES):
        app_sign_in(at, "ana", WRONG)
    assert len(_audit(env_workbench, "user.sign_in_failed")) == signin.ACCOUNT_FREE_FAILURES
    app_sign_in(at, "ana", PASSWORD)
    assert at.session_state["user"] is None
    [error] = at.error
    assert "Too many failed sign-ins" in error.value and "try again in" in error.value
    assert len(_audit(env_workbench, "user.sign_in_locked")) == 1


# -- sessions --------------------------------------------------------------------------------

def _started(wb: Workbench, username: str, *, at: dt.datetime = T0, hours: float = 12) -> tuple[int, str]:
    """A session for `username` and the cookie token its ticket was traded for."""
    with wb.db.unit_of_work() as session:
        outcome = signin.attempt(session=session, username=username, password=PASSWORD, client=None, now=at)
        assert outcome.user is not None
        started = signin.start(session=session, user=outcome.user, hours=hours, now=at)
    with wb.db.unit_of_work() as session:
        granted = signin.redeem(session=session, ticket=started.ticket, now=at + dt.timedelta(seconds=1))
    assert granted is not None
    token, max_age = granted
    assert max_age == hours * 3600 - 1
    return started.session_id, token


def _resume(wb: Workbench, token: str, at: dt.datetime) -> str | None:
    with wb.db.unit_of_work() as session:
        found = signin.resume_token(session=session, token=token, now=at)
    return found[0].username if found else None


def test_a_session_signs_in_until_it_expires_and_its_ticket_works_once(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    with workbench.db.unit_of_work() as session:
        started = signin.start(session=session, user=_user(workbench, "ana"), hours=12, now=T0)
    with workbench.db.unit_of_work() as session:
        token, _ = signin.redeem(session=session, ticket=started.ticket, now=T0) or ("", 0)
    with workbench.db.unit_of_work() as session:
        assert signin.redeem(session=session, ticket=started.ticket, now=T0) is None  # used
        stored = session.get(SignInSession, started.session_id)
        assert stored is not None and token and token not in (stored.token_hash or "")
    assert _resume(workbench, token, T0 + dt.timedelta(hours=11, minutes=59)) == "ana"
    assert _resume(workbench, token, T0 + dt.timedelta(hours=12)) is None
    assert _resume(workbench, "made-up", T0) is None


def test_a_ticket_not_traded_in_time_is_refused(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    with workbench.db.unit_of_work() as session:
        started = signin.start(session=session, user=_user(workbench, "ana"), hours=12, now=T0)
    with workbench.db.unit_of_work() as session:
        assert signin.redeem(session=session, ticket=started.ticket, now=T0 + signin.TICKET_LIFETIME * 2) is None


def test_signing_out_ends_the_session(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    session_id, token = _started(workbench, "ana")
    other_id, other_token = _started(workbench, "ana")
    with workbench.db.unit_of_work() as session:
        signin.end(session=session, session_id=session_id)
    assert _resume(workbench, token, T0) is None
    assert _resume(workbench, other_token, T0) == "ana"  # another browser stays signed in
    with workbench.db.unit_of_work() as session:
        signin.end(session=session, token=other_token)
        assert signin.resume(session=session, session_id=other_id, now=T0) is None


def test_deactivation_ends_every_session_even_after_reactivation(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    add_user(workbench, "root", Role.admin)
    session_id, token = _started(workbench, "ana", at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    with workbench.db.unit_of_work() as session:
        users.set_active(session=session, username="ana", active=False, actor="root")
    with workbench.db.unit_of_work() as session:
        users.set_active(session=session, username="ana", active=True, actor="root")
    assert _resume(workbench, token, dt.datetime.now(dt.UTC)) is None
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(SignInSession)
                              .where(SignInSession.user_id == user_id(workbench, "ana"))) == 0
        assert signin.resume(session=session, session_id=session_id) is None


def test_resuming_reads_the_role_now(workbench: Workbench) -> None:
    add_user(workbench, "ana", Role.photographer)
    session_id, _ = _started(workbench, "ana")
    with workbench.db.unit_of_work() as session:
        users.set_role(session=session, username="ana", role=Role.reviewer, actor="test")
    with workbench.db.unit_of_work() as session:
        resumed = signin.resume(session=session, session_id=session_id, now=T0)
    assert resumed is not None and resumed.role is Role.reviewer


def _user(wb: Workbench, username: str) -> users.SignedIn:
    with wb.db.unit_of_work() as session:
        found = users.authenticate(session=session, username=username, password=PASSWORD)
    assert found is not None
    return found


# -- in a browser ----------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.slow
def test_a_bookmarked_page_returns_after_sign_in_and_a_reload_keeps_the_sign_in(
    app_url: str, env_workbench: Workbench
) -> None:
    from playwright.sync_api import expect, sync_playwright

    add_user(env_workbench, "rita", Role.reviewer)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()

        # A bookmarked URL while signed out: the sign-in form, then that page (not Shoots).
        sign_in(page, f"{app_url}/review", "rita", heading="Review")
        assert page.url == f"{app_url}/review"
        expect(page.get_by_text("Page not found")).to_have_count(0)

        cookie = wait_for_session_cookie(page)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie").find(signin.SESSION_COOKIE) == -1  # not readable by scripts

        page.reload()
        expect(page.get_by_role("heading", name="Review")).to_be_visible(timeout=60_000)
        wait_until_idle(page)
        expect(page.get_by_text("Signed in as")).to_be_visible()
        assert page.get_by_role("textbox", name="Password").count() == 0

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("textbox", name="Password")).to_be_visible(timeout=60_000)
        wait_until_idle(page)
        page.reload()
        expect(page.get_by_role("textbox", name="Password")).to_be_visible(timeout=60_000)
        wait_until_idle(page)
        with env_workbench.db.unit_of_work() as session:
            assert session.scalar(select(func.count()).select_from(SignInSession)) == 0
        browser.close()
