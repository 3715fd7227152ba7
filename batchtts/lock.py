"""One run per output folder: an OS lock that dies with its process, so a crash never blocks cron."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from batchtts.errors import EXIT_BUSY, BatchttsError


class Busy(BatchttsError):
    exit_code = EXIT_BUSY


class OutputLock:
    def __init__(self, folder: Path):
        self.path = Path(folder) / "lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise Busy(
                f"{self.path.parent.parent} is in use by batchtts (pid {holder}); wait for that run to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
