"""Model releases: the one place that decides whether a release covers a capture."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from likeness.models import Person, Release, Scope

ADULT_AGE = 18


class ReleaseState(enum.StrEnum):
    valid = "valid"
    missing = "missing"
    expired = "expired"
    revoked = "revoked"
    minor_without_guardian = "minor_without_guardian"


# When no release is valid, report the most specific problem: revoked beats a missing guardian,
# which beats expiry, which beats having no covering release at all.
_SEVERITY = [ReleaseState.revoked, ReleaseState.minor_without_guardian, ReleaseState.expired, ReleaseState.missing]


@dataclass(frozen=True)
class ReleaseStatus:
    state: ReleaseState
    release_id: int | None
    detail: str

    @property
    def valid(self) -> bool:
        return self.state is ReleaseState.valid


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - before_birthday


def _evaluate(release: Release, date_of_birth: dt.date | None, capture_date: dt.date, scope: Scope) -> ReleaseStatus:
    rid = release.id
    if release.revoked_on is not None:
        return ReleaseStatus(ReleaseState.revoked, rid, f"release #{rid} was revoked on {release.revoked_on}")
    if scope.value not in (release.scopes or []):
        return ReleaseStatus(ReleaseState.missing, rid, f"release #{rid} does not cover {scope.value}")
    if release.signed_on > capture_date:
        return ReleaseStatus(
            ReleaseState.missing, rid, f"release #{rid} was signed on {release.signed_on}, after the capture on {capture_date}"
        )
    if release.expires_on is not None and capture_date > release.expires_on:
        return ReleaseStatus(ReleaseState.expired, rid, f"release #{rid} expired on {release.expires_on}")
    if date_of_birth is not None and age_on(date_of_birth, capture_date) < ADULT_AGE and not release.guardian_name:
        return ReleaseStatus(
            ReleaseState.minor_without_guardian, rid,
            # No age here: the date of birth is admin-only, this text is not.
            f"the sitter was a minor on {capture_date} and release #{rid} has no guardian's signature",
        )
    return ReleaseStatus(ReleaseState.valid, rid, f"release #{rid} signed {release.signed_on}")


def _evaluate_on(release: Release, date_of_birth: dt.date | None, capture_date: dt.date, scope: Scope,
                 still_on: dt.date | None) -> ReleaseStatus:
    verdict = _evaluate(release, date_of_birth, capture_date, scope)
    if not verdict.valid or still_on is None:
        return verdict
    today = _evaluate(release, date_of_birth, max(still_on, capture_date), scope)
    if today.valid:
        return verdict
    return ReleaseStatus(today.state, today.release_id, f"{today.detail} (checked on {still_on})")


def release_status(person: Person, capture_date: dt.date, scope: Scope | str = Scope.ai_training, *,
                   still_on: dt.date | None = None) -> ReleaseStatus:
    """Whether `person` holds a release covering `scope` for a capture on `capture_date`.

    A release covers a capture when it is signed on or before the capture date, names the scope,
    has not expired by the capture date, was never revoked and, if the sitter was a minor on that
    date, carries a guardian's signature. The date of birth comes from the admin-only personal
    data; a sitter with none on file is taken as an adult (the release attests the age).

    With `still_on` (the day a snapshot is built, or a training run starts), the same release must
    also pass every test on that day: not expired by then, and a guardian's signature if the
    sitter is still a minor then.
    """
    scope = Scope(scope)
    date_of_birth = person.personal.date_of_birth if person.personal is not None else None
    verdicts = [_evaluate_on(r, date_of_birth, capture_date, scope, still_on) for r in person.releases]
    for verdict in verdicts:
        if verdict.valid:
            return verdict
    for state in _SEVERITY:
        for verdict in verdicts:
            if verdict.state is state:
                return verdict
    return ReleaseStatus(ReleaseState.missing, None, f"{person.code} has no release on file")
