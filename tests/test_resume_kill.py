"""kill -9 a real `batchtts run` mid-way; the resumed run must finish only what is missing and end with
chapter files byte-identical to an uninterrupted run. The one kill-and-resume test: the `gate` engine
(tests/signal_cli.py) holds the fourth batch open, so the kill lands mid-run on any machine."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, done_count, run_cli, wait_for, write_jobs

SENTENCE = "Sentence number {n} of chapter {c} is spoken here, slowly and clearly, so that it takes a moment."


def _book(tmp_path: Path, engine: str | None = None) -> Path:
    records = []
    for c, suffix in enumerate([".wav", ".mp3", ".flac"], 1):
        text = " ".join(SENTENCE.format(n=n, c=c) for n in range(1, 13))
        records.append(
            {"id": f"ch{c}", "text": text, "output": f"ch{c}{suffix}", **({"engine": engine} if engine else {})}
        )
    return write_jobs(tmp_path / "book.jsonl", records)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_identical_chapters(tmp_path):
    jobs, gate = _book(tmp_path, "gate"), tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "BATCHTTS_GATE": str(gate), "BATCHTTS_GATE_AFTER": "3"}
    cli = [sys.executable, "-m", "tests.signal_cli", "run", str(jobs), "--max-batch", "2"]
    (gate / "open").touch()
    ref = subprocess.run([*cli, "--out", str(tmp_path / "ref")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    (gate / "open").unlink()
    (gate / "entered").unlink()

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*cli, "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for(lambda: (gate / "entered").exists(), "the fourth batch", proc)  # three batches committed
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = done_count(out)
    assert 3 <= killed_at <= 6, "three batches of at most two chunks were done when the kill landed"
    assert not list(out.glob(".batchtts-tmp-*")), "no half-written output may sit where a finished file is expected"

    (gate / "open").touch()
    resumed = subprocess.run(
        [*cli, "--out", str(out), "--max-batch", "3", "-v"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_at} reused, {36 - killed_at} synthesised" in resumed.stderr
    for name in ("ch1.wav", "ch2.mp3", "ch3.flac"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


@pytest.mark.slow
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
