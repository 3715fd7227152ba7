from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batchtts.engines import register_engine
from tests.fakes import HANG_GUARD_S, ToneEngine, ToneLog

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["HANG_GUARD_S", "ROOT", "done_count", "run_cli", "wait_for", "write_jobs"]

register_engine(ToneEngine)


@pytest.fixture(autouse=True)
def tone() -> Iterator[ToneLog]:
    """This test's record of what the fake engines did; the `tone` engine is bound to it, fresh for every test."""
    log = ToneLog()
    register_engine(ToneEngine.bound(log))
    yield log
    register_engine(ToneEngine)


@pytest.fixture
def bind_engine(tone: ToneLog) -> Iterator[Callable[..., type]]:
    """`bind_engine(FakeClass, **attributes)`: register a fresh subclass recording into this test's `tone` log;
    the plain class is registered again afterwards."""
    bound: list[type] = []

    def bind(cls, **attributes):
        engine = cls.bound(tone, **attributes)
        bound.append(cls)
        register_engine(engine)
        return engine

    yield bind
    for cls in bound:
        register_engine(cls)


@pytest.fixture(scope="session")
def voice_wav(tmp_path_factory) -> Path:
    """A 4 s 'recording': a real audio file with a voiced-like harmonic signal."""
    path = tmp_path_factory.mktemp("voice") / "narrator.wav"
    rate = 16000
    t = np.arange(4 * rate) / rate
    sig = 0.3 * np.sin(2 * np.pi * 140 * t) + 0.1 * np.sin(2 * np.pi * 280 * t)
    sf.write(path, (sig * np.hanning(len(t))).astype(np.float32), rate, subtype="PCM_16")
    return path


def write_jobs(path: Path, records: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = HANG_GUARD_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchtts", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )


def done_count(out: Path) -> int:
    """Chunks the ledger under output folder `out` calls done, read without disturbing a running writer."""
    try:
        with sqlite3.connect(f"file:{out / '.batchtts' / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM audio WHERE state='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(cond: Callable[[], bool], what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll `cond` until it holds; fail loudly, naming `what`, if `proc` exits first or the hang guard runs out."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not cond():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {HANG_GUARD_S} s (hang guard)")
        time.sleep(0.02)
