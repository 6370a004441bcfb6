"""One lock mechanism for every file poisonguard changes: a dataset store, a standalone ledger."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from poisonguard.errors import LockTimeout

__all__ = ["LockTimeout", "file_lock"]
_HELD: dict[str, int] = {}  # locks this process holds, by lock file: nested locks re-enter


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed), polling up to ``timeout``
    seconds; re-entrant within a process. The holder's pid is written into the file so a timeout
    can say who holds it. The OS releases the lock when its holder dies (``kill -9`` included)."""
    ident = str(path.resolve())
    if _HELD.get(ident):
        _HELD[ident] += 1
        try:
            yield
        finally:
            _HELD[ident] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text().strip() or "another run"
                    raise LockTimeout(f"{what} is locked by {holder} for more than {timeout:g} s. Wait for that run "
                                      "to finish, or raise the timeout.") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode())
        _HELD[ident] = 1
        try:
            yield
        finally:
            _HELD.pop(ident, None)
    finally:
        os.close(fd)  # closing releases the lock
