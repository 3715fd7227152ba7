"""SIGINT/SIGTERM for unattended runs: the first asks to stop after the current batch (the ledger
stays consistent and the run can be resumed); a second stops at once, which is still safe because
every file and ledger write is atomic. Before that hard stop, the helper programs still running
(ffmpeg) are killed and the temporary files registered here are removed, so nothing is left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("batchtts")

_children: set[subprocess.Popen] = set()
_temporaries: set[Path] = set()
_received: int | None = None  # the first stop signal this process handled


def received() -> int | None:
    """The stop signal this process has received, if any."""
    return _received


@contextlib.contextmanager
def temporary(path: Path) -> Iterator[Path]:
    """Remove `path` (a file or a folder) if a second signal stops the process while it exists."""
    _temporaries.add(Path(path))
    try:
        yield Path(path)
    finally:
        _temporaries.discard(Path(path))


@contextlib.contextmanager
def child(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill `proc` (not leave it running) if a second signal stops this process while it runs."""
    _children.add(proc)
    try:
        yield proc
    finally:
        _children.discard(proc)


def run_child(cmd: list[str]) -> subprocess.CompletedProcess:
    """subprocess.run with capture, but killed (not left running) if a second signal stops this process."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        _children.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            _children.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _clean_up_now() -> None:
    # The temporaries as they are now: once its child dies, a writer thread leaves its `temporary` block (and
    # drops the path from the set) before its own clean-up runs, which os._exit then never lets finish.
    temporaries = list(_temporaries)
    for proc in list(_children):
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
    for path in temporaries:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


class GracefulStop:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, _frame: object) -> None:
        global _received
        name = signal.Signals(signum).name
        if self.signum is not None:
            log.warning("second %s: stopping now; finished chunks are kept", name)
            _clean_up_now()
            os._exit(128 + signum)
        self.signum = _received = signum
        log.warning("%s received: finishing the current batch, then stopping (send it again to stop at once)", name)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        global _received
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        _received = None
