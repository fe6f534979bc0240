"""Agreement between raters on categorical judgements: Fleiss' kappa (Fleiss 1971), in the form
that allows a different number of raters per item."""

from __future__ import annotations

import math
from collections.abc import Sequence


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """`counts[i][j]` = how many raters put item i in category j; items with fewer than two
    ratings are ignored. None when agreement by chance is already total (every rating in one
    category), where kappa is undefined."""
    rows = [list(row) for row in counts if sum(row) >= 2]
    if not rows:
        return None
    categories = len(rows[0])
    total = sum(sum(row) for row in rows)
    shares = [sum(row[j] for row in rows) / total for j in range(categories)]
    chance = sum(p * p for p in shares)
    if math.isclose(chance, 1.0):
        return None
    observed = sum((sum(c * c for c in row) - sum(row)) / (sum(row) * (sum(row) - 1)) for row in rows) / len(rows)
    return (observed - chance) / (1.0 - chance)
