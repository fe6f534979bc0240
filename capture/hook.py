"""gphoto2's hook: a downloaded file handed to the hot folder in a way the watcher counts as
complete (a temporary hidden name in the target folder, then a rename)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from likeness.errors import InvalidInput


def deliver(source: Path, into: Path) -> Path:
    """Move ``source`` into the folder ``into``; the path it now has. A file already there stays."""
    if not source.is_file():
        raise InvalidInput(f"{source}: no such file to deliver")
    if not into.is_dir():
        raise InvalidInput(f"{into} is not a folder", hint="create the sitter folder inside the watched shoot folder")
    target = into / source.name
    if source.resolve() == target.resolve():
        return target
    if target.exists():
        raise InvalidInput(f"{target} exists already", hint="let gphoto2 name files uniquely (--filename %f-%n.%C)")
    temporary = into / f".{source.name}.incoming"  # hidden: the watcher ignores it until the rename
    try:
        os.replace(source, temporary)  # same filesystem: a rename, nothing copied
    except OSError:
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        source.unlink()
    os.replace(temporary, target)
    return target
