"""One run per output folder: an OS lock that dies with its process, so a crash never blocks cron.

The lock file is never opened through a symbolic link (that would truncate a user's file), and the
caller's check of the rest of the state folder runs again once the lock is held."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from batchtts.errors import Busy, EnvironmentProblem


def linked(path: Path) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"{path} is a symbolic link; batchtts keeps its state only in real files and folders "
        "inside the output folder: remove the link and run again"
    )


class OutputLock:
    def __init__(self, path: Path, check: Callable[[], None] = lambda: None):
        self.path, self.check = Path(path), check  # `check` raises when the state folder holds a link
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # linked after the check above
                raise linked(self.path) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise Busy(
                f"{self.path.parent.parent} is in use by batchtts (pid {holder}); wait for that run to finish"
            ) from None
        try:
            self.check()  # again, now that no other batchtts can change it
        except EnvironmentProblem:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
