"""kill -9 a real `batchtts run` mid-way; the resumed run must finish only what is missing and end with
chapter files byte-identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, done_count, run_cli, write_jobs

SENTENCE = "Sentence number {n} of chapter {c} is spoken here, slowly and clearly, so that it takes a moment."


def _book(tmp_path: Path) -> Path:
    records = []
    for c, suffix in enumerate([".wav", ".mp3", ".flac"], 1):
        text = " ".join(SENTENCE.format(n=n, c=c) for n in range(1, 13))
        records.append({"id": f"ch{c}", "text": text, "output": f"ch{c}{suffix}"})
    return write_jobs(tmp_path / "book.jsonl", records)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_identical_chapters(tmp_path):
    jobs = _book(tmp_path)
    ref = run_cli("run", str(jobs), "--out", str(tmp_path / "ref"), "--max-batch", "2")
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchtts", "run", str(jobs), "--out", str(out), "--max-batch", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while done_count(out) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = done_count(out)
    assert 0 < killed_at < 36, "the kill should land mid-run"
    assert not list(out.glob(".batchtts-tmp-*")), "no half-written output may sit where a finished file is expected"

    resumed = run_cli("run", str(jobs), "--out", str(out), "--max-batch", "3", "-v")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_at} reused, {36 - killed_at} synthesised" in resumed.stderr
    for name in ("ch1.wav", "ch2.mp3", "ch3.flac"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_temp_files_left_by_a_killed_writer_are_cleaned_up(tmp_path):
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text": "One short sentence here.", "output": "a.wav"}])
    out = tmp_path / "out"
    (out / ".batchtts" / "chunks" / "ab").mkdir(parents=True)
    stale = [
        out / ".batchtts-tmp-x1y2z3w4-a.wav",
        out / ".batchtts" / "chunks" / "ab" / ".batchtts-tmp-q1q2q3q4-abcd.wav",
    ]
    for path in stale:
        path.write_bytes(b"half")
    proc = run_cli("run", str(jobs), "--out", str(out), "-v")
    assert proc.returncode == 0 and "removed 2 temporary files" in proc.stderr
    assert not any(p.exists() for p in stale)
