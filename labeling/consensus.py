"""Consensus per face and attribute, and agreement between annotators per attribute.

Label Studio Community computes no agreement, so we do it from our own Label rows. The consensus
value is the majority of the current annotations (one vote per annotator); a tie is reported,
not broken. Agreement is Krippendorff's alpha (the `krippendorff` package), which allows any
number of annotators per face and missing ratings; ordered attributes use the ordinal metric.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import krippendorff
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.taxonomy import Taxonomy
from likeness.models import Label, LabelState


@dataclass(frozen=True)
class Consensus:
    face_id: int
    attribute: str
    value: str | None          # None when tied
    votes: dict[str, int]
    annotators: int

    @property
    def tied(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Agreement:
    attribute: str
    alpha: float | None        # None when no face has two ratings
    faces_rated_twice: int
    ratings: int
    metric: str


def _votes(*, session: Session, face_ids: list[int] | None = None,
           attributes: Collection[str] | None = None) -> dict[tuple[int, str], dict[str, str]]:
    """(face, attribute) → {annotator: value}, from current, known annotation labels."""
    query = select(Label.face_id, Label.attribute, Label.annotator, Label.value, Label.id).where(
        Label.source == "annotation", Label.state == LabelState.current, Label.known.is_(True),
        Label.value.is_not(None)).order_by(Label.id)
    if face_ids is not None:
        query = query.where(Label.face_id.in_(face_ids))
    if attributes is not None:
        query = query.where(Label.attribute.in_(sorted(attributes)))
    votes: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
    for face_id, attribute, annotator, value, _ in session.execute(query):
        if value is None:
            continue  # excluded by the query already; the column itself is nullable
        votes[(face_id, attribute)][annotator] = value  # an annotator's latest value counts once
    return votes


def _majority(by_annotator: dict[str, str]) -> tuple[str | None, Counter[str]]:
    counts = Counter(by_annotator.values())
    ranked = counts.most_common()
    return (ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None), counts


def consensus(*, session: Session, face_ids: list[int] | None = None) -> list[Consensus]:
    out = []
    for (face_id, attribute), by_annotator in sorted(_votes(session=session, face_ids=face_ids).items()):
        top, counts = _majority(by_annotator)
        out.append(Consensus(face_id, attribute, top, dict(counts), len(by_annotator)))
    return out


def consensus_values(*, session: Session, attributes: Collection[str],
                     face_ids: list[int] | None = None) -> dict[int, dict[str, str | None]]:
    """face → attribute → consensus value (None when tied), for the named attributes only: the
    same rule as `consensus`, without its per-face records (a snapshot pool reads every face)."""
    out: dict[int, dict[str, str | None]] = defaultdict(dict)
    for (face_id, attribute), by_annotator in _votes(session=session, face_ids=face_ids,
                                                     attributes=attributes).items():
        if len(by_annotator) == 1:   # one annotator: their value, no counting
            out[face_id][attribute] = next(iter(by_annotator.values()))
        else:
            out[face_id][attribute] = _majority(by_annotator)[0]
    return out


def agreement(*, session: Session, taxonomy: Taxonomy) -> list[Agreement]:
    votes = _votes(session=session)
    out = []
    for attribute in taxonomy.attributes:
        units = {face: by for (face, name), by in votes.items() if name == attribute.name}
        annotators = sorted({a for by in units.values() for a in by})
        paired = [face for face, by in units.items() if len(by) >= 2]
        ratings = sum(len(by) for by in units.values())
        metric: Literal["ordinal", "nominal"] = "ordinal" if attribute.ordinal else "nominal"
        alpha = None
        if paired:
            code = {value: i for i, value in enumerate(attribute.values())}
            matrix = np.full((len(annotators), len(paired)), np.nan)
            for column, face in enumerate(paired):
                for row, annotator in enumerate(annotators):
                    value = units[face].get(annotator)
                    if value is not None:
                        matrix[row, column] = code[value]
            if len({v for v in matrix[~np.isnan(matrix)]}) > 1:
                alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=metric,
                                                 value_domain=list(range(len(code)))))
            else:
                alpha = 1.0  # every rating the same value: perfect agreement (alpha is 0/0 there)
        out.append(Agreement(attribute.name, alpha, len(paired), ratings, metric))
    return out
