"""What every committed batch of new faces gets, whoever generates them (`likeness generate`, the
Training page): the discriminator and realism scores (training.generated_scores), the image checks
(qa.generated) and the active learned filter's decisions (qa.filter), in that order, because the
filter reads both. `training.api.generate` and `generate_mix` take one as `batch_checks`: it hears
each committed batch, then every id of the call, so faces a killed run committed but never
reached are done at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from likeness.models import GeneratedImage
from likeness.workbench import Workbench
from qa.filter import store as filter_store
from qa.filter.store import DecideResult, FilterVersion
from qa.generated.store import CheckSummary, check_images
from training.generate import recorded_checkpoint
from training.generated_scores import ScoreSummary, load_scorer, score_images, unscored_images
from training.generated_scores import describe as describe_scores

__all__ = ["CHECK_BATCH", "GenerationChecks", "active_filter", "unchecked_generated"]

CHECK_BATCH = 256           # faces a killed run left unchecked, checked and decided together
FACE_FOUND = "face_found"   # the image check every checked face has (qa.generated.checks)


def active_filter(workbench: Workbench) -> FilterVersion | None:
    """The filter version that decides new faces (qa.filter), or None before one is trained."""
    return next((version for version in filter_store.filters(workbench) if version.active), None)


def unchecked_generated(workbench: Workbench, checkpoint_id: int, ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Of `ids` (one checkpoint's): those without the image checks, and those no filter has
    looked at, as a run killed between committing faces and checking them leaves them."""
    wanted = set(ids)
    with workbench.db.unit_of_work() as session:
        rows = [row for row in session.execute(
            select(GeneratedImage.id, GeneratedImage.checks, GeneratedImage.filter_id)
            .where(GeneratedImage.checkpoint_id == checkpoint_id).order_by(GeneratedImage.id)) if row.id in wanted]
    return ([row.id for row in rows if FACE_FOUND not in (row.checks or {})],
            [row.id for row in rows if row.filter_id is None])


class GenerationChecks:
    """Scores, checks and decides the new faces of one checkpoint, batch after batch, and sums up
    what it did (`lines`). Everything it needs is loaded when it is made, before any rendering: a
    tainted checkpoint or a missing dataset stops the generation before it starts."""

    def __init__(self, workbench: Workbench, checkpoint: int | Path, *, score: bool = True, checks: bool = True) -> None:
        self.workbench, self.score, self.checks = workbench, score, checks
        self.checkpoint_id = -1   # with neither, nothing is read (and nothing is done)
        if score or checks:
            with workbench.db.unit_of_work() as session:
                self.checkpoint_id = recorded_checkpoint(checkpoint, session=session).id
        self.scorers = {self.checkpoint_id: load_scorer(workbench, self.checkpoint_id)} if score else {}
        active = active_filter(workbench) if checks else None
        self.filter_version = active.version if active is not None else None   # one version for the whole run
        self.scored = ScoreSummary()
        self.checked = CheckSummary()
        self.decided = [0, 0, 0]   # scored, accepted, rejected by the filter

    def __call__(self, ids: list[int]) -> None:
        if self.score:
            self._score(ids)
        if self.checks:
            self._check(ids)
            self._decide(ids)

    def finish(self, ids: Sequence[int]) -> None:
        """Faces committed by a run killed before their scores, checks or decisions."""
        if self.score:
            unscored = set(unscored_images(self.workbench, checkpoint_id=self.checkpoint_id)).intersection(ids)
            if unscored:
                self._score(sorted(unscored))
        if self.checks:
            unchecked, undecided = unchecked_generated(self.workbench, self.checkpoint_id, ids)
            for start in range(0, len(unchecked), CHECK_BATCH):
                self._check(unchecked[start:start + CHECK_BATCH])
            for start in range(0, len(undecided), CHECK_BATCH):
                self._decide(undecided[start:start + CHECK_BATCH])

    def lines(self) -> list[str]:
        """What was scored, checked and decided, a line each (as `likeness generate` prints them)."""
        lines = [describe_scores(self.scored)] if self.score else []
        if self.checks:
            lines.append(self.checked.describe())
            if self.filter_version is None:
                lines.append("no learned filter yet, so no face was decided automatically: they are left to "
                             "reviewers (`likeness filter train` learns one from their votes)")
            else:
                lines.append(DecideResult(self.filter_version, *self.decided).describe())
        return lines

    def _score(self, ids: list[int]) -> None:
        summary = score_images(self.workbench, ids, scorers=self.scorers)
        self.scored.scored += summary.scored
        for name, count in summary.flagged.items():
            self.scored.flagged[name] = self.scored.flagged.get(name, 0) + count

    def _check(self, ids: list[int]) -> None:
        summary = check_images(self.workbench, ids)
        self.checked.checked += summary.checked
        self.checked.no_face += summary.no_face
        self.checked.mismatched += summary.mismatched
        for name, count in summary.flagged.items():
            self.checked.flagged[name] = self.checked.flagged.get(name, 0) + count

    def _decide(self, ids: list[int]) -> None:
        if self.filter_version is not None:
            decided = filter_store.decide(self.workbench, image_ids=ids, version=self.filter_version)
            for i, count in enumerate((decided.scored, decided.accepted, decided.rejected)):
                self.decided[i] += count
