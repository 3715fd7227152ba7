"""Issue 16, reliability: user files survive cleaning, state folders refuse links, corrupt state is recovered
or reported in one line, and late faults (signals, a full disk) end with the documented exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts.atomic import atomic_path, atomic_write_bytes, is_temp_name, remove_stale_temps
from batchtts.cli import main
from tests.conftest import write_jobs
from tests.fakes import ToneEngine

TEXT = "The first sentence is here. The second one follows. A third closes the chapter."


@pytest.fixture(autouse=True)
def _reset():
    ToneEngine.calls.clear()
    ToneEngine.fail_texts.clear()


def _jobs(tmp_path: Path, output: str = "ch.wav", **extra) -> Path:
    return write_jobs(
        tmp_path / "book.jsonl", [{"id": "ch", "text": TEXT, "output": output, "engine": "tone", **extra}]
    )


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# Defect 1: only batchtts's own temp files are cleaned.


def test_temp_names_carry_a_batchtts_prefix_and_a_random_part(tmp_path):
    seen = []
    for _ in range(2):
        with atomic_path(tmp_path / "Lanterns.m4b") as tmp:
            seen.append(tmp.name)
            assert tmp.parent == tmp_path and tmp.suffix == ".m4b" and is_temp_name(tmp.name)
            tmp.write_bytes(b"x")
    assert seen[0] != seen[1] and all(n.startswith(".batchtts-tmp-") for n in seen)
    long = tmp_path / ("a" * 250 + ".flac")
    with atomic_path(long) as tmp:
        assert len(tmp.name.encode()) < 255 and tmp.suffix == ".flac"
        tmp.write_bytes(b"x")


def test_cleaning_removes_only_batchtts_temps_never_other_tools_files(tmp_path):
    jobs = _jobs(tmp_path)
    out = tmp_path / "out"
    theirs = [
        out / ".syncthing.ch.wav.tmp",
        out / ".ch.x1y2.tmp.wav",  # the old naming, which any tool might also use
        out / ".notes.tmp",
        out / ".batchtts-tmp-notrandom",
        out / ".batchtts" / "chunks" / ".syncthing.a.tmp",
    ]
    ours = [
        out / ".batchtts-tmp-ab12cd_9-ch.wav",
        out / ".batchtts-tmp-zz00yy11-Lanterns.m4b",  # a killed book encode, in the output folder itself
        out / ".batchtts" / "chunks" / "ab" / ".batchtts-tmp-q1w2e3r4-abcd.wav",
    ]
    for path in theirs + ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    result = invoke("run", str(jobs), "--out", str(out), "-v")
    assert result.exit_code == 0, result.output
    assert all(p.read_bytes() == b"half" for p in theirs)
    assert not any(p.exists() for p in ours)


def test_remove_stale_temps_never_follows_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / ".batchtts-tmp-ab12cd34-x.wav"
    victim.write_bytes(b"keep")
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "linked").symlink_to(elsewhere)
    (folder / ".batchtts-tmp-ab12cd35-y.wav").symlink_to(victim)
    assert remove_stale_temps(folder, recursive=True) == 0
    assert victim.read_bytes() == b"keep"
    atomic_write_bytes(folder / "z.bin", b"z")
    assert [p.name for p in folder.iterdir() if is_temp_name(p.name)] == [".batchtts-tmp-ab12cd35-y.wav"]


# Defect 7: links in the state folder are refused, never followed.


def _user_file(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own words\n")
    return victim


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = _user_file(tmp_path)
    out = tmp_path / "out"
    (out / ".batchtts").mkdir(parents=True)
    (out / ".batchtts" / "lock").symlink_to(victim)
    result = invoke("run", str(_jobs(tmp_path)), "--out", str(out))
    assert result.exit_code == 4, result.output
    assert "lock" in result.output and "link" in result.output and "Traceback" not in result.output
    assert victim.read_text() == "the user's own words\n"


@pytest.mark.parametrize("linked", [".batchtts", ".batchtts/chapters", ".batchtts/chunks", ".batchtts/voices"])
def test_a_linked_state_folder_is_refused_in_one_line(tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / linked).parent.mkdir(parents=True, exist_ok=True)
    (out / linked).symlink_to(elsewhere, target_is_directory=True)
    result = invoke("run", str(_jobs(tmp_path)), "--out", str(out))
    assert result.exit_code == 4, result.output
    assert "symbolic link" in result.output and linked.split("/")[-1] in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []


def test_a_linked_ledger_or_chapter_file_is_not_followed(tmp_path):
    victim = _user_file(tmp_path)
    out = tmp_path / "out"
    (out / ".batchtts" / "chapters").mkdir(parents=True)
    (out / ".batchtts" / "chapters" / "ch.flac").symlink_to(victim)
    assert invoke("run", str(_jobs(tmp_path)), "--out", str(out)).exit_code == 0
    assert victim.read_text() == "the user's own words\n"
    assert not (out / ".batchtts" / "chapters" / "ch.flac").is_symlink()
    other = tmp_path / "other"
    (other / ".batchtts").mkdir(parents=True)
    (other / ".batchtts" / "ledger.sqlite").symlink_to(victim)
    result = invoke("run", str(_jobs(tmp_path)), "--out", str(other))
    assert result.exit_code == 4 and "ledger.sqlite" in result.output and "symbolic link" in result.output
    assert victim.read_text() == "the user's own words\n"
