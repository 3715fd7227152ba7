from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batchtts.engines import register_engine
from tests.fakes import ToneEngine

ROOT = Path(__file__).resolve().parent.parent

register_engine(ToneEngine)


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


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
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
