"""SIGINT/SIGTERM for unattended runs: the first asks to stop after the current batch (the ledger
stays consistent and the run can be resumed); a second stops at once, which is still safe because
every file and ledger write is atomic."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("batchtts")


class GracefulStop:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            log.warning("second %s: stopping now; finished chunks are kept", name)
            os._exit(128 + signum)
        self.signum = signum
        log.warning("%s received: finishing the current batch, then stopping (send it again to stop at once)", name)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
