"""Run the eye-state detector over a labelled image set and score it.

The labels file is the shared test-data format: a CSV with at least ``path`` and ``label``
columns, paths relative to the CSV's folder. Face labels are ``open``, ``half_closed``,
``closed``, ``crossed``, ``looking_away`` (``averted_gaze`` is read as ``looking_away``) and
``none`` (no face expected); rows with any other label (``raw``, ``raw_unsupported``...) are
skipped. Each image is judged by its worst face (:data:`qa.eyes.SEVERITY`); an image in which
no face is found is predicted ``none``.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from likeness.errors import InvalidInput, NotFound
from likeness.progress import ProgressFn
from qa.eyes import EyeState, EyeThresholds, EyeVerdict, classify_image, image_verdict, load_thresholds, load_upright

log = logging.getLogger(__name__)

# Label in the CSV -> the class it is scored as.
TRUTH_LABELS: dict[str, str] = {
    "open": "open", "half_closed": "half_closed", "closed": "closed", "crossed": "crossed",
    "looking_away": "looking_away", "averted_gaze": "looking_away", "none": "none",
}
NO_FACE = "none"
CLASSES: tuple[str, ...] = (*(s.value for s in EyeState), NO_FACE)



@dataclass(frozen=True)
class LabelledImage:
    path: Path  # resolved against the CSV's folder
    relative: str  # as written in the CSV
    label: str  # the CSV's label
    truth: str  # the class it is scored as


def read_labels(labels_csv: Path | str) -> list[LabelledImage]:
    """The face rows of a labels CSV; raises NotFound/InvalidInput naming the file or row."""
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise NotFound(f"labels file {labels_csv} not found")
    rows: list[LabelledImage] = []
    with labels_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise InvalidInput(f"labels file {labels_csv} needs a header with 'path' and 'label' columns",
                               hint=f"found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            relative = (row.get("path") or "").strip()
            if label not in TRUTH_LABELS:
                log.debug("%s:%d: label %r is not a face label, skipped", labels_csv, line, label)
                continue
            if not relative:
                raise InvalidInput(f"{labels_csv}, line {line}: empty path")
            rows.append(LabelledImage(labels_csv.parent / relative, relative, label, TRUTH_LABELS[label]))
    return rows


@dataclass(frozen=True)
class ImageResult:
    relative: str
    truth: str
    predicted: str
    verdicts: tuple[EyeVerdict, ...]


@dataclass(frozen=True)
class ClassScore:
    support: int  # images labelled with this class
    predicted: int  # images predicted as this class
    correct: int
    precision: float | None  # None when nothing was predicted as this class
    recall: float | None  # None when no image carries this label


@dataclass(frozen=True)
class EvaluationReport:
    labels_csv: Path
    results: tuple[ImageResult, ...]
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (truth, predicted) -> images

    @property
    def truths(self) -> list[str]:
        present = {r.truth for r in self.results}
        return [c for c in CLASSES if c in present]

    @property
    def predictions(self) -> list[str]:
        """Every outcome the detector can give, so that empty columns show as zeros."""
        return list(CLASSES)

    def score(self, cls: str) -> ClassScore:
        support = sum(n for (t, _), n in self.confusion.items() if t == cls)
        predicted = sum(n for (_, p), n in self.confusion.items() if p == cls)
        correct = self.confusion.get((cls, cls), 0)
        return ClassScore(support, predicted, correct,
                          correct / predicted if predicted else None, correct / support if support else None)

    @property
    def per_class(self) -> dict[str, ClassScore]:
        """Scores of the labelled classes and of any other class the detector predicted."""
        present = set(self.truths) | {r.predicted for r in self.results}
        return {c: self.score(c) for c in CLASSES if c in present}

    @property
    def accuracy(self) -> float | None:
        return sum(r.truth == r.predicted for r in self.results) / len(self.results) if self.results else None

    @property
    def misclassified(self) -> list[ImageResult]:
        return [r for r in self.results if r.truth != r.predicted]

    @property
    def faces_on_none(self) -> list[ImageResult]:
        """Images labelled ``none`` in which a face was reported anyway."""
        return [r for r in self.results if r.truth == NO_FACE and r.verdicts]


def evaluate(labels_csv: Path | str, *, thresholds: EyeThresholds | None = None,
             progress: ProgressFn | None = None) -> EvaluationReport:
    """Classify every face-labelled image of ``labels_csv`` and tally the results."""
    rows = read_labels(labels_csv)
    t = thresholds or load_thresholds()
    results: list[ImageResult] = []
    for done, row in enumerate(rows, start=1):
        verdicts = tuple(classify_image(load_upright(row.path), thresholds=t))
        state = image_verdict(verdicts)
        predicted = state.value if state is not None else NO_FACE
        results.append(ImageResult(row.relative, row.truth, predicted, verdicts))
        log.info("%s: %s -> %s", row.relative, row.truth, predicted)
        if progress is not None:
            progress(done, len(rows), row.relative)
    confusion = Counter((r.truth, r.predicted) for r in results)
    return EvaluationReport(Path(labels_csv), tuple(results), dict(confusion))
