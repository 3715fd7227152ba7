"""Issue 16, defect 6: faults late in a run (signals while ffmpeg encodes, a full disk while writing chapter
audio, encoding, or in TMPDIR) end with the documented exit code and one line, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.conftest import HANG_GUARD_S, ROOT, write_jobs

TEXT = "The first sentence is here. The second one follows. A third closes the chapter."


def _jobs(tmp_path: Path, output: str, engine: str = "tone", text: str = TEXT) -> Path:
    return write_jobs(tmp_path / "book.jsonl", [{"id": "ch", "text": text, "output": output, "engine": engine}])


class Proc:
    """A real `batchtts run` in its own process group, its stderr collected line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.signal_cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.popen.stderr), daemon=True)
        self._reader.start()

    def wait_for(self, cond, what: str, timeout: float = HANG_GUARD_S) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.popen.poll() is None, f"exited {self.popen.returncode} before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{self.stderr}"
            time.sleep(0.01)

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float = HANG_GUARD_S) -> int:
        rc = self.popen.wait(timeout)
        self._reader.join(10)
        return rc

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def _fake_ffmpeg(folder: Path, setup: str = "") -> dict[str, str]:
    """An `ffmpeg` first on PATH: a Python script that runs `setup`, records its pid, then sleeps."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "ffmpeg"
    exe.write_text(
        f"#!{sys.executable}\nimport os, signal, sys, time\nfrom pathlib import Path\n{setup}\n"
        f"Path({str(folder / 'pid')!r}).write_text(str(os.getpid()))\ntime.sleep(600)\n"  # killed by the test
    )
    exe.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead for our purposes
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_ctrl_c_to_the_process_group_while_ffmpeg_encodes_exits_130_in_one_line(tmp_path):
    # ffmpeg's own reaction to SIGINT: exit 255 (a real ffmpeg may not be mid-encode when the signal lands).
    env = _fake_ffmpeg(tmp_path / "bin", "signal.signal(signal.SIGINT, lambda *a: os._exit(255))")
    jobs, out = _jobs(tmp_path, "ch.mp3"), tmp_path / "out"
    proc = Proc(["run", str(jobs), "--out", str(out)], env)
    proc.wait_for(lambda: (tmp_path / "bin" / "pid").exists(), "ffmpeg")
    os.killpg(proc.popen.pid, signal.SIGINT)
    assert proc.finish() == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "stopped by SIGINT" in proc.stderr.strip().splitlines()[-1]
    assert not list(out.glob(".batchtts-tmp-*")) and not (out / "ch.mp3").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "tests.signal_cli", "run", str(jobs), "--out", str(out)], cwd=ROOT, capture_output=True
    )
    assert resumed.returncode == 0 and (out / "ch.mp3").stat().st_size > 0


def test_a_second_sigterm_while_encoding_kills_ffmpeg_and_removes_its_temp_files(tmp_path):
    env = _fake_ffmpeg(tmp_path / "bin")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env["TMPDIR"] = str(tmpdir)
    jobs, out = _jobs(tmp_path, "ch.mp3"), tmp_path / "out"
    proc = Proc(["run", str(jobs), "--out", str(out)], env)
    proc.wait_for(lambda: (tmp_path / "bin" / "pid").exists(), "ffmpeg")
    ffmpeg = int((tmp_path / "bin" / "pid").read_text())
    assert list(tmpdir.glob("batchtts-enc-*/metadata.txt")) and list(out.glob(".batchtts-tmp-*"))
    proc.popen.send_signal(signal.SIGTERM)
    proc.wait_for(lambda: proc.said("SIGTERM received"), "the first SIGTERM's message")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish() == 128 + signal.SIGTERM, proc.stderr
    assert proc.said("second SIGTERM: stopping now")
    assert not _alive(ffmpeg), "ffmpeg must not outlive the run"
    assert list(tmpdir.iterdir()) == [], "the temp folder for ffmpeg is removed"
    assert not list(out.glob(".batchtts-tmp-*")), "and so is the half-written output"


@pytest.fixture
def tiny_mount(tmp_path):
    """Mount a 1-page tmpfs at a given folder (root only; skipped elsewhere)."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "4k") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_4_kib_tmpdir_is_enough(tmp_path, tiny_mount, monkeypatch):
    """ffmpeg reads the audio from a pipe (issue 23): TMPDIR holds only its metadata file, never a WAV."""
    jobs, out = _jobs(tmp_path, "ch.mp3", text=" ".join([TEXT] * 8)), tmp_path / "out"
    monkeypatch.setattr(tempfile, "tempdir", str(tiny_mount(tmp_path / "tmp")))
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "ch.mp3").stat().st_size > 4096


@pytest.mark.parametrize(
    ("where", "output"),
    [
        ("chapter PCM", "ch.wav"),  # .batchtts/chapters on a full disk
        ("chapter wav", "book/ch.wav"),  # the output folder (libsndfile writes it)
        ("chapter mp3", "book/ch.mp3"),  # the output folder (ffmpeg writes it)
    ],
)
def test_a_full_disk_late_in_the_run_exits_4_in_one_line(tmp_path, tiny_mount, monkeypatch, where, output):
    jobs, out = _jobs(tmp_path, output, text=" ".join([TEXT] * 8)), tmp_path / "out"  # 50 s: over 4 KiB in any format
    if where == "chapter PCM":
        tiny_mount(out / ".batchtts" / "chapters")
    else:
        tiny_mount(out / "book")
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)])
    assert result.exit_code == 4, (result.output, result.exception)
    assert "disk full while writing" in result.output and "finished chunks are kept" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(out.rglob(".batchtts-tmp-*"))
