"""One run per output folder: an OS lock that dies with its process, so a crash never blocks cron.

The state folder is refused when it, a folder in it or one of its files is a symbolic link: a link
would make batchtts truncate a user's file (the lock) or write state outside the output folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from batchtts.errors import EXIT_BUSY, BatchttsError, EnvironmentProblem

STATE_SUBFOLDERS = ("chapters", "chunks", "voices")
STATE_FILES = ("lock", "ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite-journal")


class Busy(BatchttsError):
    exit_code = EXIT_BUSY


def _linked(path: Path) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"{path} is a symbolic link; batchtts keeps its state only in real files and folders "
        "inside the output folder: remove the link and run again"
    )


def check_state_folder(folder: Path) -> None:
    """Refuse a state folder that is, or holds, a symbolic link where batchtts writes."""
    folder = Path(folder)
    if folder.is_symlink():
        raise _linked(folder)
    for name in STATE_SUBFOLDERS + STATE_FILES:
        if (folder / name).is_symlink():
            raise _linked(folder / name)
    chunks = folder / "chunks"
    if chunks.is_dir():
        for sub in os.scandir(chunks):
            if sub.is_symlink():
                raise _linked(Path(sub.path))


class OutputLock:
    def __init__(self, folder: Path):
        self.path = Path(folder) / "lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        check_state_folder(self.path.parent)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # linked after the check above
                raise _linked(self.path) from None
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
            check_state_folder(self.path.parent)  # again, now that no other batchtts can change it
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
