"""Learning the filter and calibrating its two thresholds: no database, so the proxy benchmark
and `likeness filter train` use the same code.

The labelled items are split by group (a source photograph, or each item its own) into a
learning part and a test part that only measures. On the learning part every item is scored by
a model trained on the other folds (cross-fitting), the thresholds are chosen on those scores,
and the model kept is trained on the whole learning part. "Accept" is p(good) >= the accept threshold, "reject" is p(good) <= the reject
threshold; each threshold is the loosest one at which that decision still reaches the target
precision on the out-of-fold scores, as a one-sided 95 % lower confidence bound (with at least
MIN_DECIDED items decided there). A side that cannot reach it decides nothing: its threshold is
infinite. The model is held monotonic in each check (qa.filter.features.direction).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from qa.filter.features import direction

TARGET_PRECISION = 0.95
MIN_DECIDED = 5                       # fewer decided items prove no precision
TEST_SHARE = 0.2                      # of the groups, held out to measure
FOLDS = 5                             # cross-fitting folds of the rest, to calibrate
MIN_VOTES = 20
CONFIDENCE_Z = 1.645                  # one-sided 95 %


@dataclasses.dataclass(frozen=True)
class Thresholds:
    reject: float                     # p(good) at or below: rejected; -inf when never
    accept: float                     # p(good) at or above: accepted; +inf when never

    def decide(self, p_good: float) -> str | None:
        if p_good >= self.accept:
            return "accept"
        if p_good <= self.reject:
            return "reject"
        return None

    def as_dict(self) -> dict[str, float | None]:
        return {"reject": None if math.isinf(self.reject) else self.reject,
                "accept": None if math.isinf(self.accept) else self.accept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        reject, accept = data.get("reject"), data.get("accept")
        return cls(reject=-math.inf if reject is None else float(reject), accept=math.inf if accept is None else float(accept))


@dataclasses.dataclass(frozen=True)
class Reach:
    """How sure one side could be at best: the highest precision lower bound any threshold gives
    it on the calibration scores (MIN_DECIDED items decided or more), and how many it decides
    there. For a side that decides nothing it says how far off the target the votes leave it."""

    bound: float
    decided: int

    def describe(self, target: float) -> str:
        if not self.decided:
            return f"fewer than {MIN_DECIDED} faces to decide"
        return f"at best {self.bound:.1%} sure, over {self.decided} faces; needs {target:.0%}"


def side_thresholds(p_good: np.ndarray, good: np.ndarray, side: str) -> list[tuple[float, int, float]]:
    """Every threshold "accept" (the highest scores) or "reject" (the lowest) could take, strictest
    first, that decides MIN_DECIDED items or more: the threshold, how many items it decides and
    the :func:`precision_bound` of its calls. A threshold takes all items of equal score or none."""
    order = np.argsort(-p_good if side == "accept" else p_good, kind="stable")
    scores = p_good[order]
    right = np.cumsum(good[order] if side == "accept" else 1 - good[order])
    ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))   # last item of each equal-score run
    return [(float(scores[end]), int(end) + 1, precision_bound(int(right[end]), int(end) + 1))
            for end in ends if end + 1 >= MIN_DECIDED]


def reach(p_good: np.ndarray, good: np.ndarray, side: str) -> Reach:
    """The best precision bound any threshold gives one side, and how many items it decides there."""
    best = max(side_thresholds(p_good, good, side), key=lambda found: found[2], default=None)
    return Reach(bound=0.0, decided=0) if best is None else Reach(bound=best[2], decided=best[1])


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How the decisions fared on labelled items the model and thresholds never saw."""

    items: int
    accepted: int
    rejected: int
    accept_precision: float | None    # share of accepted items that are good; None when none accepted
    reject_precision: float | None
    good: int

    @property
    def coverage(self) -> float:
        return (self.accepted + self.rejected) / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "coverage": self.coverage}

    def describe(self) -> str:
        def share(value: float | None) -> str:
            return "-" if value is None else f"{value:.1%}"
        return (f"{self.items} held-out items: coverage {self.coverage:.1%} (accepted {self.accepted}, precision "
                f"{share(self.accept_precision)}; rejected {self.rejected}, precision {share(self.reject_precision)})")


@dataclasses.dataclass(frozen=True)
class TrainedFilter:
    model: HistGradientBoostingClassifier
    features: list[str]
    thresholds: Thresholds
    calibration: Evaluation
    test: Evaluation
    sizes: dict[str, int]             # items per part
    reach: dict[str, Reach]           # "accept", "reject": how sure each could be on the calibration scores

    def p_good(self, x: np.ndarray) -> np.ndarray:
        return probability_good(self.model, x)


def probability_good(model: HistGradientBoostingClassifier, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    classes = list(model.classes_)
    if 1 not in classes:
        return np.zeros(len(x))
    return np.asarray(model.predict_proba(x)[:, classes.index(1)], dtype=np.float64)


def split_groups(groups: Sequence[Any], seed: int, shares: Sequence[float]) -> np.ndarray:
    """The part (0, 1, …, one per share) of each item; no group in two parts."""
    unique = sorted(set(groups), key=str)
    order = np.random.default_rng(seed).permutation(len(unique))
    cuts = np.cumsum([round(share * len(unique)) for share in shares[:-1]])
    part = {unique[j]: int(np.searchsorted(cuts, rank, side="right")) for rank, j in enumerate(order)}
    return np.asarray([part[g] for g in groups])


def precision_bound(right: int, decided: int) -> float:
    """A one-sided 95 % lower bound (Wilson score) on a precision seen as right/decided: the
    thresholds must reach the target with that confidence, not only on the calibration sample,
    or faces beyond it fall short half the time."""
    if decided == 0:
        return 0.0
    share, z2 = right / decided, CONFIDENCE_Z ** 2
    centre = share + z2 / (2 * decided)
    spread = CONFIDENCE_Z * math.sqrt(share * (1 - share) / decided + z2 / (4 * decided ** 2))
    return (centre - spread) / (1 + z2 / decided)


def calibrate(p_good: np.ndarray, good: np.ndarray, target: float = TARGET_PRECISION) -> Thresholds:
    """The loosest thresholds at which accept and reject each reach `target` precision (its
    lower confidence bound) on these labelled items; reject stays below accept."""
    accept = min((t for t, _, bound in side_thresholds(p_good, good, "accept") if bound >= target), default=math.inf)
    reject = max((t for t, _, bound in side_thresholds(p_good, good, "reject") if bound >= target and t < accept),
                 default=-math.inf)
    return Thresholds(reject=reject, accept=accept)


def evaluate(p_good: np.ndarray, good: np.ndarray, thresholds: Thresholds) -> Evaluation:
    accepted = p_good >= thresholds.accept
    rejected = (p_good <= thresholds.reject) & ~accepted
    return Evaluation(items=len(good), accepted=int(accepted.sum()), rejected=int(rejected.sum()),
                      accept_precision=float(good[accepted].mean()) if accepted.any() else None,
                      reject_precision=float(1 - good[rejected].mean()) if rejected.any() else None,
                      good=int(good.sum()))


def _model(n: int, seed: int, features: Sequence[str]) -> HistGradientBoostingClassifier:
    """Gradient boosting held monotonic in each check (features.direction): with a few
    photographs to learn from, an unconstrained model also learns which photograph scores
    how, and on new people a worse score could then raise p(good)."""
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=15, l2_regularization=1.0,
                                          min_samples_leaf=max(3, min(20, n // 10)), random_state=seed,
                                          monotonic_cst=[direction(name) for name in features])


def fit(x: np.ndarray, good: np.ndarray, features: list[str], *, groups: Sequence[Any] | None = None,
        seed: int = 0, target: float = TARGET_PRECISION, test_share: float = TEST_SHARE) -> TrainedFilter:
    """Learn on the learning part, calibrate on its out-of-fold scores, measure on the test part.
    ``test_share`` 0 keeps every item for learning, for a caller that holds its own test items
    out. ValueError when there are too few items or only one class to learn from."""
    good = np.asarray(good, dtype=np.int64)
    if len(good) < MIN_VOTES:
        raise ValueError(f"{len(good)} labelled faces; the filter needs at least {MIN_VOTES}")
    groups = list(groups) if groups is not None else list(range(len(good)))
    learn = split_groups(groups, seed, (1 - test_share, test_share)) == 0 if test_share > 0 else np.ones(len(good), bool)
    if len(set(good[learn].tolist())) < 2:
        raise ValueError("the learning part holds only good or only bad faces: more varied votes are needed")
    # Every learning item is scored by a model that did not see it (cross-fitting), so all of
    # them calibrate the thresholds.
    learn_index = np.flatnonzero(learn)
    folds = split_groups([groups[i] for i in learn_index], seed + 1, [1 / FOLDS] * FOLDS)
    out_of_fold = np.zeros(len(learn_index))
    for fold in range(FOLDS):
        held = folds == fold
        rest = learn_index[~held]
        if not held.any():
            continue
        if len(set(good[rest].tolist())) < 2:
            out_of_fold[held] = float(good[rest].mean()) if len(rest) else 0.5
            continue
        out_of_fold[held] = probability_good(_model(len(rest), seed, features).fit(x[rest], good[rest]), x[learn_index[held]])
    thresholds = calibrate(out_of_fold, good[learn], target)
    final = _model(int(learn.sum()), seed, features).fit(x[learn], good[learn])
    test = ~learn
    return TrainedFilter(model=final, features=features, thresholds=thresholds,
                         calibration=evaluate(out_of_fold, good[learn], thresholds),
                         test=evaluate(probability_good(final, x[test]), good[test], thresholds),
                         sizes={"learn": int(learn.sum()), "test": int(test.sum())},
                         reach={side: reach(out_of_fold, good[learn], side) for side in ("accept", "reject")})
