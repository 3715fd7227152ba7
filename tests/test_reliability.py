"""Issue 16, reliability: user files survive cleaning, state folders refuse links, corrupt state is recovered
or reported in one line, and late faults (signals, a full disk) end with the documented exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.state.atomic import atomic_path, atomic_write_bytes, is_temp_name, remove_stale_temps
from tests.conftest import write_jobs

TEXT = "The first sentence is here. The second one follows. A third closes the chapter."


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


# Defect 5: corrupt state is rebuilt, recovered, or reported in one line with the way out.


def _ledger_files(out: Path) -> list[Path]:
    return [out / ".batchtts" / f"ledger.sqlite{s}" for s in ("", "-wal", "-shm")]


def test_an_emptied_ledger_is_refilled_from_the_chunk_store(tmp_path, caplog, tone):
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    first = (out / "ch.wav").read_bytes()
    for path in _ledger_files(out):
        if path.exists():
            path.write_bytes(b"")  # a truncated, empty ledger
    tone.calls.clear()
    result = invoke("run", str(jobs), "--out", str(out), "-v")
    assert result.exit_code == 0, result.output
    assert tone.calls == [], "every chunk is proven by its stored file: nothing is synthesised again"
    assert "3 reused, 0 synthesised" in caplog.text and "recovered 3 finished chunks" in caplog.text
    assert (out / "ch.wav").read_bytes() == first


def test_a_stored_chunk_that_does_not_prove_its_key_is_not_recovered(tmp_path, tone):
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    wavs = sorted((out / ".batchtts" / "chunks").rglob("*.wav"))
    data = bytearray(wavs[0].read_bytes())
    data[-8:] = bytes(8)  # a flipped sample
    wavs[0].write_bytes(bytes(data))
    wavs[2].rename(wavs[2].with_name(wavs[1].name + ".x"))
    wavs[1].unlink()
    wavs[2].with_name(wavs[1].name + ".x").rename(wavs[1])  # another chunk's audio under this key
    for path in _ledger_files(out):
        path.unlink(missing_ok=True)
    tone.calls.clear()
    result = invoke("run", str(jobs), "--out", str(out), "-v")
    assert result.exit_code == 0, result.output
    assert sorted(len(c) for c in tone.calls) == [3], "all three: two do not prove their key, one is gone"


@pytest.mark.parametrize("command", ["run", "retry", "status", "plan"])
def test_an_unreadable_ledger_is_one_line_with_the_way_out(tmp_path, command):
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    (out / ".batchtts").mkdir(parents=True)
    (out / ".batchtts" / "ledger.sqlite").write_bytes(os.urandom(3000))
    result = invoke(command, str(jobs), "--out", str(out))
    assert result.exit_code == 4, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    line = result.output.strip().splitlines()[-1]
    assert "ledger.sqlite" in line and "--fresh" in line and "move it aside" in line


def test_doctor_detects_an_unreadable_ledger(tmp_path):
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    ok = invoke("doctor", str(jobs), "--out", str(out), "--engine", "tone")
    assert "ledger" in ok.output and "FAIL ledger" not in ok.output
    (out / ".batchtts" / "ledger.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(5000))
    for path in _ledger_files(out)[1:]:
        path.unlink(missing_ok=True)
    bad = invoke("doctor", str(jobs), "--out", str(out), "--engine", "tone")
    assert bad.exit_code == 4 and "FAIL ledger" in bad.output and "--fresh" in bad.output


def test_a_moved_aside_ledger_recovers_from_the_store(tmp_path, tone):
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    ledger = out / ".batchtts" / "ledger.sqlite"
    size = ledger.stat().st_size
    with open(ledger, "r+b") as fh:
        fh.truncate(size // 2)
    for path in _ledger_files(out)[1:]:
        path.unlink(missing_ok=True)
    bad = invoke("run", str(jobs), "--out", str(out))
    if bad.exit_code == 4:  # SQLite noticed the cut: the one-line way out
        ledger.rename(ledger.with_suffix(".bad"))
    tone.calls.clear()
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    assert tone.calls == []


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, b"PK\x03\x04" + bytes(40)])
def test_a_broken_voice_cache_is_rebuilt(tmp_path, content, voice_wav):
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [{"id": "ch", "text": TEXT, "output": "ch.wav", "engine": "tone", "voice": {"prompt_audio": str(voice_wav)}}],
    )
    out = tmp_path / "out"
    assert invoke("run", str(jobs), "--out", str(out)).exit_code == 0
    caches = list((out / ".batchtts" / "voices").glob("*.npz"))
    assert caches
    for cache in caches:
        cache.write_bytes(content)
    (out / "ch.wav").unlink()
    (out / ".batchtts" / "ledger.sqlite").unlink()
    result = invoke("run", str(jobs), "--out", str(out), "--fresh")
    assert result.exit_code == 0, result.output
    import numpy as np

    for cache in caches:
        assert cache.read_bytes() != content
        with np.load(cache) as npz:  # the broken file would raise here (EOFError, BadZipFile, ValueError)
            assert npz.files == []  # the tone engine's voice state: nothing, written again as a valid archive


# Defect 11, the smaller ones.


def test_english_chunk_keys_do_not_depend_on_espeak_ng_being_on_path(tmp_path, monkeypatch):
    from batchtts.planning.prepare import prepare

    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": "en", "text": TEXT, "output": "en.wav"},
            {"id": "zh", "text": "灯塔亮了。他走上楼梯。", "output": "zh.wav"},
        ],
    )
    with_espeak = prepare(jobs, tmp_path / "out", None)
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # a cron PATH without espeak-ng
    without = prepare(jobs, tmp_path / "out", None)
    assert [c.key for c in without.chunks["en"]] == [c.key for c in with_espeak.chunks["en"]]
    assert with_espeak.chunks["zh"][0].language == "zh"  # Mandarin is espeak-ng's: its version stays in those keys
    assert [c.key for c in without.chunks["zh"]] != [c.key for c in with_espeak.chunks["zh"]]


def test_espeak_ng_version_is_asked_once_per_process(tmp_path, monkeypatch):
    import subprocess

    from batchtts.engines.embedded import espeak
    from batchtts.planning.prepare import prepare

    calls = []
    real = subprocess.run
    monkeypatch.setattr(espeak.subprocess, "run", lambda cmd, *a, **k: calls.append(cmd) or real(cmd, *a, **k))
    espeak._version_of.cache_clear()  # earlier tests in this process may have asked already
    records = [{"id": f"c{i}", "text": "灯塔亮了。", "output": f"c{i}.wav", "language": "zh"} for i in range(5)]
    prepare(write_jobs(tmp_path / "book.jsonl", records), tmp_path / "out", None)
    prepare(write_jobs(tmp_path / "book.jsonl", records), tmp_path / "out", None)
    assert len([c for c in calls if "--version" in c]) == 1


def test_a_fifo_as_text_file_is_refused_not_waited_on(tmp_path):
    from tests.conftest import run_cli

    os.mkfifo(tmp_path / "chapter.txt")
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "ch", "text_file": "chapter.txt", "output": "ch.wav"}])
    proc = run_cli("plan", str(jobs))  # a FIFO that were waited on would hang to the guard, then fail
    assert proc.returncode == 2, proc.stderr
    assert "book.jsonl:1" in proc.stderr and "text_file" in proc.stderr and "not a regular file" in proc.stderr


def test_an_id_ending_in_a_newline_is_refused(tmp_path):
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "ch\n", "text": TEXT, "output": "ch.wav", "engine": "tone"}])
    result = invoke("plan", str(jobs))
    assert result.exit_code == 2 and "field 'id'" in result.output


# Defect 10: engine options are range-checked where they are resolved.


@pytest.mark.parametrize("value", ["NaN", "Infinity", "0", "-1", "1e30", "true", '"fast"'])
@pytest.mark.parametrize(("engine", "option"), [("embedded", "length_scale"), ("glmtts", "temperature")])
def test_out_of_range_sampling_values_are_refused_naming_the_field(tmp_path, engine, option, value):
    line = f'{{"id": "ch", "text": "Hello there.", "output": "ch.wav", "engine": "{engine}", '
    jobs = write_jobs(tmp_path / "book.jsonl", [line + f'"sampling": {{"{option}": {value}}}}}'])
    result = invoke("plan", str(jobs), "--kv-budget", "1GiB")
    assert result.exit_code == 2, result.output
    assert f"book.jsonl:1: field 'sampling.{option}': " in result.output, result.output


def test_every_engine_declares_a_range_for_each_option():
    from batchtts.engines import engine_class

    for name in ("embedded", "glmtts"):
        cls = engine_class(name)
        assert set(cls.option_ranges) == set(cls.option_defaults), name
        cls.resolve_options({})  # the defaults are in range
