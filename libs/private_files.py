"""Files only their owner may read: the database, artifacts, keys (directories 0700, files 0600).

The modes are given when a file or directory is created (not fixed afterwards, so
there is no moment when another user could open it); the process umask can only
take permissions away.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> Path:
    """`path` and every missing parent created 0700 (existing directories are left as they are)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made concurrently (another replica or thread)
            continue
        d.chmod(DIR_MODE)  # whatever the umask
    return path


def touch_private(path: Path) -> Path:
    """Create `path` empty with mode 0600 if missing; an existing file is made 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    path.chmod(FILE_MODE)
    return path


def open_private_new(path: Path) -> io.BufferedWriter:
    """A new file (must not exist) opened for binary writing, created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return os.fdopen(fd, "wb")


def write_private_text(path: Path, text: str) -> None:
    """Create `path` (it must not exist) 0600 holding `text`."""
    with open_private_new(path) as fh:
        fh.write(text.encode("utf-8"))
