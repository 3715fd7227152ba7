"""Fault injection on real `batchtts run` processes: signals, concurrent runs, a full disk and a stale lock
(kill -9 and resume: test_resume_kill.py). After each fault the ledger must be consistent, and a resumed run
must end with chapter files byte-identical to an uninterrupted run. Signals and the concurrent run meet a
batch held open by the `gate` engine (tests/signal_cli.py), so no test depends on the machine's speed."""

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, ROOT, run_cli, wait_for, write_jobs

pytestmark = pytest.mark.slow
SENTENCE = "Line {n} of part {c} tells how the keeper climbed the stair and lit the lamp once more."
OUTPUTS = ["p1.wav", "p2.mp3", "p3.flac", "Lights.m4b", "Lights.m3u", "p1.srt", "p2.json"]


def _records(engine: str | None = None) -> list[dict]:
    return [
        {
            "id": f"p{c}",
            "text": " ".join(SENTENCE.format(n=n, c=c) for n in range(1, 9)),
            "output": f"p{c}{suffix}",
            "book": "Lights",
            "title": f"Part {c}",
            "track": c,
            **({"engine": engine} if engine else {}),
        }
        for c, suffix in enumerate([".wav", ".mp3", ".flac"], 1)
    ]


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> tuple[Path, Path]:
    """(job file, reference output folder), on the embedded engine."""
    tmp = tmp_path_factory.mktemp("faults")
    jobs = write_jobs(tmp / "book.jsonl", _records())
    ref = run_cli("run", str(jobs), "--out", str(tmp / "ref"), "--max-batch", "2")
    assert ref.returncode == 0, ref.stderr
    return jobs, tmp / "ref"


class Gated:
    """The same book on the `gate` engine: `start` a run that blocks in batch `after + 1` until `release`."""

    def __init__(self, tmp: Path):
        self.jobs = write_jobs(tmp / "gated.jsonl", _records("gate"))
        self.gate = tmp / "gate"
        self.gate.mkdir()
        self.ref = tmp / "gated-ref"
        self.release()
        ref = subprocess.run(self.cli(self.ref), cwd=ROOT, env=self.env(), capture_output=True, text=True)
        assert ref.returncode == 0, ref.stderr

    def cli(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "tests.signal_cli", "run", str(self.jobs), "--out", str(out), "--max-batch", "2"]

    def env(self, after: int = 0) -> dict[str, str]:
        return {**os.environ, "BATCHTTS_GATE": str(self.gate), "BATCHTTS_GATE_AFTER": str(after)}

    def start(self, out: Path, after: int = 0) -> subprocess.Popen:
        """A run whose batch number `after + 1` is certainly running, and stays so, when this returns."""
        for name in ("open", "entered"):
            (self.gate / name).unlink(missing_ok=True)
        proc = subprocess.Popen(
            self.cli(out), cwd=ROOT, env=self.env(after), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: (self.gate / "entered").exists(), f"batch {after + 1} started", proc)
        return proc

    def release(self) -> None:
        (self.gate / "open").touch()


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> Gated:
    return Gated(tmp_path_factory.mktemp("gated"))


def _stderr_until(proc: subprocess.Popen, line_part: str) -> list[str]:
    """Lines of `proc`'s stderr up to the one holding `line_part` (read while the gated batch is still open)."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line_part in line:
            return lines
    raise AssertionError(f"the process ended without saying {line_part!r}:\n{''.join(lines)}")


def assert_consistent(out: Path, ref: Path, names: list[str] = OUTPUTS) -> None:
    """Ledger intact; every chunk it calls done is on disk as recorded; no output is half-written."""
    ledger = out / ".batchtts" / "ledger.sqlite"
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            for path, nbytes, sha in db.execute("SELECT path, nbytes, sha256 FROM audio WHERE state='done'"):
                data = Path(path).read_bytes()
                assert len(data) == nbytes and hashlib.sha256(data).hexdigest() == sha
    for name in names:
        if (out / name).exists():  # a chapter either is complete and right, or is not there at all
            assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def assert_same_book(out: Path, ref: Path) -> None:
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_a_concurrent_run_is_refused_with_exit_3(gated, tmp_path):
    out = tmp_path / "out"
    first = gated.start(out)  # holds the output folder's lock, its first batch open
    second = subprocess.run(gated.cli(out), cwd=ROOT, env=gated.env(), capture_output=True, text=True)
    assert second.returncode == 3 and "in use by batchtts (pid" in second.stderr
    gated.release()
    _, err = first.communicate(timeout=HANG_GUARD_S)
    assert first.returncode == 0, err
    assert_same_book(out, gated.ref)


def test_sigterm_finishes_the_batch_keeps_the_ledger_consistent_and_says_how_to_resume(gated, tmp_path):
    out = tmp_path / "out"
    proc = gated.start(out, after=1)  # one batch done, the second held open
    proc.send_signal(signal.SIGTERM)
    lines = _stderr_until(proc, "SIGTERM received: finishing the current batch")
    gated.release()
    err = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=HANG_GUARD_S) == 128 + signal.SIGTERM, err
    assert f"Resume with: batchtts run {gated.jobs} --out {out}" in err  # the folder it wrote to, not out/
    assert_consistent(out, gated.ref)
    with sqlite3.connect(out / ".batchtts" / "ledger.sqlite") as db:
        assert db.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0] == "interrupted"
        done = db.execute("SELECT COUNT(*) FROM audio WHERE state='done'").fetchone()[0]
    assert 2 <= done <= 4  # two batches of at most 2 finished, the held one too; nothing after it started
    resumed = subprocess.run(gated.cli(out), cwd=ROOT, env=gated.env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_book(out, gated.ref)


def test_a_second_signal_stops_at_once_and_is_still_consistent(gated, tmp_path):
    """The `gate` engine holds its first batch open until both signals have been handled."""
    out = tmp_path / "out"
    proc = gated.start(out)
    proc.send_signal(signal.SIGINT)
    lines = _stderr_until(proc, "SIGINT received: finishing the current batch")  # handled before the second
    proc.send_signal(signal.SIGINT)
    err = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=HANG_GUARD_S) == 128 + signal.SIGINT, err
    assert "second SIGINT: stopping now" in err
    assert not (gated.gate / "open").exists()  # so the batch never finished: the stop really was at once
    assert_consistent(out, gated.ref)
    gated.release()
    resumed = subprocess.run(gated.cli(out), cwd=ROOT, env=gated.env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_book(out, gated.ref)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_nothing_and_exits_4(book, tmp_path, small_disk):
    jobs, ref = book
    out = small_disk / "out"
    full = run_cli("run", str(jobs), "--out", str(out))
    assert full.returncode == 4, full.stderr
    assert "disk full while writing" in full.stderr and "finished chunks are kept" in full.stderr
    assert_consistent(out, ref)
    assert not list(out.rglob(".batchtts-tmp-*"))  # the failed write cleaned up after itself
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)  # the user frees space (here: moves the folder to a bigger disk)
    resumed = run_cli("run", str(jobs), "--out", str(moved), "-v")
    assert resumed.returncode == 0, resumed.stderr
    assert " 0 reused" not in resumed.stderr
    assert_same_book(moved, ref)


def test_stale_lock_file_from_a_dead_process_does_not_block(book, tmp_path):
    jobs, ref = book
    lock = tmp_path / "out" / ".batchtts" / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getpid() + 100000))  # a pid that holds nothing
    assert run_cli("run", str(jobs), "--out", str(tmp_path / "out")).returncode == 0
    assert_same_book(tmp_path / "out", ref)
