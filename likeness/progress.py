"""The one progress callback shape every long-running stage accepts."""

from __future__ import annotations

from collections.abc import Callable

# (done, total, what was just finished: a file name, a task id, or "" when there is nothing to
# name). ``total`` is 0 while it is not yet known.
ProgressFn = Callable[[int, int, str], None]
