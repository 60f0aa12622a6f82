"""Files written so that a crash leaves either the old content or the new, never half; and locks.

Temporary files are made beside their target, named ``.<target name>.<random>``, so that
:func:`remove_leftovers` can find what a killed process left behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file beside it, synced, then renamed.

    mkstemp creates the temporary file readable by its owner only (mode 0600), and the rename
    keeps that mode, so secrets written this way are never readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def remove_leftovers(path: Path) -> None:
    """Delete the temporaries that :func:`write_atomically` of ``path`` left when killed."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def sync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    if sys.platform == "win32":
        return
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class LockedError(Exception):
    """Another process holds the lock."""


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if needed), or raise :class:`LockedError` at once.

    The lock file is removed on release. Whoever locks it checks afterwards that the file it
    locked is still the one at ``path`` (not one a releasing holder just unlinked), and tries
    again if not, so two processes can never both believe they hold it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(handle)
        except OSError:
            os.close(handle)
            raise LockedError(str(path)) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(handle)):
            break
        os.close(handle)
    try:
        yield
    finally:
        # Unlinked while still locked, so nobody can lock this file between the two steps
        # (Windows cannot unlink an open file: the file stays there, which is harmless).
        if sys.platform != "win32":
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(handle)


if sys.platform == "win32":  # pragma: no cover - the suite runs on POSIX
    import msvcrt

    def _lock(handle: int) -> None:
        msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(handle: int) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
