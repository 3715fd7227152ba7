"""Fault injection on real `batchtts run` processes: kills at random points, signals, concurrent runs and
a full disk. After each fault the ledger must be consistent, and a resumed run must end with chapter
files byte-identical to an uninterrupted run."""

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, done_count, run_cli, write_jobs

pytestmark = pytest.mark.slow
SENTENCE = "Line {n} of part {c} tells how the keeper climbed the stair and lit the lamp once more."
OUTPUTS = ["p1.wav", "p2.mp3", "p3.flac", "Lights.m4b", "Lights.m3u", "p1.srt", "p2.json"]


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> tuple[Path, Path, float]:
    """(job file, reference output folder, reference wall seconds)."""
    tmp = tmp_path_factory.mktemp("faults")
    records = [
        {
            "id": f"p{c}",
            "text": " ".join(SENTENCE.format(n=n, c=c) for n in range(1, 9)),
            "output": f"p{c}{suffix}",
            "book": "Lights",
            "title": f"Part {c}",
            "track": c,
        }
        for c, suffix in enumerate([".wav", ".mp3", ".flac"], 1)
    ]
    jobs = write_jobs(tmp / "book.jsonl", records)
    t0 = time.monotonic()
    ref = run_cli("run", str(jobs), "--out", str(tmp / "ref"), "--max-batch", "2")
    assert ref.returncode == 0, ref.stderr
    return jobs, tmp / "ref", time.monotonic() - t0


def _start(jobs: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchtts", "run", str(jobs), "--out", str(out), "--max-batch", "2", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(cond, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


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


def test_kill_9_at_random_points_loses_nothing(book, tmp_path):
    jobs, ref, wall = book
    rng = random.Random(20261125)
    kills = 0
    for trial in range(4):
        out = tmp_path / f"trial{trial}"
        for _ in range(2):
            proc = _start(jobs, out)
            time.sleep(rng.uniform(0.3, wall))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            _, err = proc.communicate()
            assert proc.returncode in (0, -signal.SIGKILL), err  # never refused by the dead run's lock
            assert_consistent(out, ref)
        final = run_cli("run", str(jobs), "--out", str(out), "--max-batch", "3")
        assert final.returncode == 0, final.stderr
        assert_same_book(out, ref)
    assert kills >= 4  # the seeded delays land mid-run


def test_a_concurrent_run_is_refused_with_exit_3(book, tmp_path):
    jobs, ref, _ = book
    first = _start(jobs, tmp_path / "out")
    _wait_for(lambda: (tmp_path / "out" / ".batchtts" / "ledger.sqlite").exists())
    second = run_cli("run", str(jobs), "--out", str(tmp_path / "out"))
    assert second.returncode == 3 and "in use by batchtts (pid" in second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_same_book(tmp_path / "out", ref)


def test_sigterm_finishes_the_batch_keeps_the_ledger_consistent_and_says_how_to_resume(book, tmp_path):
    jobs, ref, _ = book
    out = tmp_path / "out"
    proc = _start(jobs, out)
    _wait_for(lambda: done_count(out) >= 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received: finishing the current batch" in err
    assert f"Resume with: batchtts run {jobs}" in err
    assert_consistent(out, ref)
    with sqlite3.connect(out / ".batchtts" / "ledger.sqlite") as db:
        assert db.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0] == "interrupted"
    resumed = run_cli("run", str(jobs), "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_book(out, ref)


def test_a_second_signal_stops_at_once_and_is_still_consistent(tmp_path):
    """Deterministic: the `gate` engine holds its first batch open until both signals have been handled."""
    records = [
        {
            "id": f"p{c}",
            "text": " ".join(SENTENCE.format(n=n, c=c) for n in range(1, 5)),
            "output": f"p{c}.wav",
            "engine": "gate",
            "book": "Lights",
            "track": c,
        }
        for c in (1, 2)
    ]
    jobs = write_jobs(tmp_path / "book.jsonl", records)
    gate = tmp_path / "gate"
    gate.mkdir()
    cli = [sys.executable, "-m", "tests.signal_cli", "run", str(jobs), "--max-batch", "2"]
    env = {**os.environ, "BATCHTTS_GATE": str(gate)}
    (gate / "open").touch()
    ref = subprocess.run([*cli, "--out", str(tmp_path / "ref")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    (gate / "open").unlink()
    (gate / "entered").unlink()

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*cli, "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: (gate / "entered").exists())  # a batch is running, and stays running
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    lines = []
    for line in proc.stderr:  # the first signal is handled before the second is sent
        lines.append(line)
        if "SIGINT received: finishing the current batch" in line:
            break
    proc.send_signal(signal.SIGINT)
    err = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGINT, err
    assert "second SIGINT: stopping now" in err
    assert not (gate / "open").exists()  # so the batch never finished: the stop really was at once
    names = ["p1.wav", "p2.wav", "Lights.m4b", "Lights.m3u", "p1.srt", "p2.json"]
    assert_consistent(out, tmp_path / "ref", names)
    (gate / "open").touch()
    resumed = subprocess.run([*cli, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


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
    jobs, ref, _ = book
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
    jobs, ref, _ = book
    lock = tmp_path / "out" / ".batchtts" / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getpid() + 100000))  # a pid that holds nothing
    assert run_cli("run", str(jobs), "--out", str(tmp_path / "out")).returncode == 0
    assert_same_book(tmp_path / "out", ref)
