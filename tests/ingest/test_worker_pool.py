"""The ingest's worker pool outlives nothing: its workers end when the process that started them
is killed outright, instead of waiting for work for ever with their models in memory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# A process with a pool of two workers that prints their pids and then waits to be killed.
POOL = """
import os, time
from ingest.coordinator import make_executor
pool = make_executor(2)
futures = [pool.submit(os.getpid) for _ in range(8)]
print(" ".join(str(pid) for pid in sorted({f.result() for f in futures})), flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its reaper has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_workers_end_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", POOL], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and all(running(pid) for pid in workers)
    finally:
        parent.kill()  # SIGKILL: the pool gets no chance to stop its workers
        parent.wait()
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if running(pid)], "workers outlived their parent"
