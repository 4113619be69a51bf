"""The daemon's lock on its data directory: ``<data_dir>/gateway.lock``, an ``flock``.

The daemon takes it before it opens the store and holds it for its whole life; the kernel
drops it when the process ends, however it ends (kill -9 included), so it is never stale.
``gatewayctl restore`` takes the same lock for the time of the swap: it refuses while a
daemon holds it, and a daemon starting meanwhile refuses to start instead of opening a
database that is being replaced (issue 13: a socket ping alone missed a daemon whose
control socket was down or elsewhere).

The file holds the holder's pid, for the message only; the lock is the ``flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from gateway.errors import StoreError

LOCK_NAME = "gateway.lock"


class StoreLocked(StoreError):
    """Another process (a daemon, or a restore) holds the data directory's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is held by {who} (a running gateway daemon or a restore)")
        self.path = path
        self.pid = pid


class StoreLock:
    """``StoreLock(data_dir).acquire()`` ... ``release()``; also a context manager."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        """Take the lock now or raise :class:`StoreLocked` (never waits)."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except PermissionError:  # a technician may read the directory but not create files
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(self.path, holder_pid(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # read-only fd: the pid is only for messages
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(path: Path) -> int | None:
    """The pid written by the lock's holder (best effort, for messages)."""
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def is_locked(data_dir: str | os.PathLike[str]) -> bool:
    """True while some process holds the lock (probed with a shared, non-blocking flock)."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
