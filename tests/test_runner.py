"""The runner with a deterministic engine double: resume, reuse, determinism, failures, locking."""

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts import run
from batchtts.cli import main
from batchtts.state.workspace import Workspace
from tests.conftest import write_jobs

CH1 = "The first chapter begins here. It has three sentences. This is the last one."
CH2 = "第二章开始了。这里有两句话。\n\nA new paragraph, in English this time. And one more sentence!"


@pytest.fixture
def book(tmp_path: Path, voice_wav: Path) -> Path:
    voice = {"prompt_audio": str(voice_wav), "prompt_text": "a test voice"}
    return write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": "ch1", "text": CH1, "output": "ch1.wav", "engine": "tone", "voice": voice},
            {"id": "ch2", "text": CH2, "output": "ch2.flac", "engine": "tone", "voice": voice, "title": "Two"},
        ],
    )


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.*")) if p.is_file()}


def test_a_finished_job_file_does_no_synthesis(book, tmp_path, caplog, tone):
    first = run(book, out=tmp_path / "out")
    assert first.synthesized == first.chunks == 7 and len(first.written) == 2
    tone.calls.clear()
    caplog.set_level("INFO", logger="batchtts")
    again = run(book, out=tmp_path / "out")
    assert tone.calls == [] and again.synthesized == 0 and again.reused == 7
    assert again.written == [] and len(again.up_to_date) == 2
    assert "no synthesis needed" in caplog.text


def test_editing_one_sentence_resynthesises_only_that_sentence(book, tmp_path, tone):
    run(book, out=tmp_path / "out")
    before = _outputs(tmp_path / "out")
    book.write_text(book.read_text().replace("It has three sentences.", "It has three short sentences."))
    tone.calls.clear()
    summary = run(book, out=tmp_path / "out")
    assert summary.synthesized == 1 and sum(map(len, tone.calls)) == 1
    after = _outputs(tmp_path / "out")
    assert after["ch2.flac"] == before["ch2.flac"] and after["ch1.wav"] != before["ch1.wav"]
    assert summary.written == [str((tmp_path / "out" / "ch1.wav").resolve())]


def test_same_input_gives_same_keys_and_bytes_whatever_the_batch_size(book, tmp_path):
    run(book, out=tmp_path / "a")
    run(book, out=tmp_path / "b", max_batch=1)
    run(book, out=tmp_path / "c", max_batch=3)
    a, b, c = (_outputs(tmp_path / d) for d in "abc")
    assert a == b == c and len(a) == 8  # two chapters, each with .srt, .vtt and .json timings

    def keys(d):
        with sqlite3.connect(Workspace(tmp_path / d).ledger_path) as db:
            return db.execute("SELECT job_id, idx, key FROM chunks ORDER BY job_id, idx").fetchall()

    assert keys("a") == keys("b") == keys("c")


def test_a_deleted_or_corrupted_chunk_is_detected_and_redone(book, tmp_path, tone):
    out = tmp_path / "out"
    run(book, out=out)
    before = _outputs(out)
    files = sorted((Workspace(out).state / "chunks").rglob("*.wav"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:-100])
    tone.calls.clear()
    summary = run(book, out=out)
    assert summary.synthesized == 2
    assert _outputs(out) == before


def test_fresh_forgets_finished_chunks(book, tmp_path):
    run(book, out=tmp_path / "out")
    summary = run(book, out=tmp_path / "out", fresh=True)
    assert summary.synthesized == 7 and summary.reused == 0


def test_a_failing_chunk_spares_the_rest_and_exits_1(book, tmp_path, tone):
    tone.fail_texts.add("It has three sentences.")
    result = CliRunner().invoke(main, ["run", str(book), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "failed chunk" in result.output and "cannot say" in result.output
    assert not (tmp_path / "out" / "ch1.wav").exists() and (tmp_path / "out" / "ch2.flac").exists()
    status = CliRunner().invoke(main, ["status", str(book), "--out", str(tmp_path / "out")])
    assert status.exit_code == 0
    ch1 = next(line for line in status.output.splitlines() if line.startswith("ch1"))
    assert ch1.split()[1:4] == ["2", "1", "1"] and "(not written)" in ch1
    tone.fail_texts.clear()
    result = CliRunner().invoke(main, ["run", str(book), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and (tmp_path / "out" / "ch1.wav").exists()


def test_a_second_run_on_the_same_outputs_is_refused_with_exit_3(book, tmp_path):
    out = tmp_path / "out"
    with Workspace(out).lock():
        result = CliRunner().invoke(main, ["run", str(book), "--out", str(out)])
    assert result.exit_code == 3 and "in use by batchtts" in result.output
    assert CliRunner().invoke(main, ["run", str(book), "--out", str(out)]).exit_code == 0


def test_status_reports_done_and_left_per_job(book, tmp_path):
    result = CliRunner().invoke(main, ["status", str(book), "--out", str(tmp_path / "out")])
    assert [line.split()[:4] for line in result.output.splitlines()[1:]] == [
        ["ch1", "0", "3", "0"],
        ["ch2", "0", "4", "0"],
    ]
    run(book, out=tmp_path / "out")
    result = CliRunner().invoke(main, ["status", str(book), "--out", str(tmp_path / "out")])
    assert [line.split()[:4] for line in result.output.splitlines()[1:]] == [
        ["ch1", "3", "0", "0"],
        ["ch2", "4", "0", "0"],
    ]


def test_batches_never_repeat_a_key_and_mix_no_voices(tmp_path, voice_wav, tone):
    same = "This sentence appears in both chapters."
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {
                "id": "a",
                "text": f"{same} Then chapter a goes on.",
                "output": "a.wav",
                "engine": "tone",
                "voice": {"prompt_audio": str(voice_wav)},
            },
            {"id": "b", "text": f"{same} Then chapter b goes on.", "output": "b.wav", "engine": "tone"},
        ],
    )
    summary = run(jobs, out=tmp_path / "out", max_batch=8, waste_target=10.0)
    assert summary.chunks == 4 and summary.synthesized == 4  # different voices: different keys
    assert len(tone.calls) == 2 and sorted(map(len, tone.calls)) == [2, 2]
    tone.calls.clear()
    jobs.write_text(jobs.read_text().replace(', "voice": {"prompt_audio": "' + str(voice_wav) + '"}', ""))
    summary = run(jobs, out=tmp_path / "out2", max_batch=8, waste_target=10.0)
    assert summary.chunks == 4 and summary.synthesized == 3  # same voice: the shared sentence once
    assert tone.calls and len(tone.calls[0]) == 3
