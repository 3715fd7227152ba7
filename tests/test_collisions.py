"""Every file a run writes is distinct, outside the state folder and never an input (issue 16, defects 2, 10, 11)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import batchtts
from batchtts.cli import main
from tests.conftest import write_jobs


def _job(job_id: str, output: str, **extra) -> dict:
    return {"id": job_id, "text": f"Chapter {job_id} says hello.", "output": output, "engine": "tone", **extra}


def _refused(tone, jobs: Path, out: Path, line: int, field: str, *fragments: str) -> str:
    """Run through the CLI: exit 2, one line naming the job file, line and field, before any synthesis."""
    tone.calls.clear()
    before = {p: p.read_bytes() for p in jobs.parent.rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"batchtts: error: {jobs}:{line}: field '{field}': "), message
    for fragment in fragments:
        assert fragment in message, message
    assert tone.calls == []
    assert {p: p.read_bytes() for p in jobs.parent.rglob("*") if p.is_file()} == before
    return message


def test_two_books_whose_names_make_one_file_are_refused(tmp_path, tone):
    jobs = write_jobs(
        tmp_path / "b.jsonl", [_job("a", "a.wav", book="War and Peace"), _job("b", "b.wav", book="War/and/Peace")]
    )
    _refused(tone, jobs, tmp_path / "out", 2, "book", "War-and-Peace.m4b", "War and Peace", "line 1")


def test_a_chapter_named_like_its_book_is_refused(tmp_path, tone):
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "Saga.m4b", book="Saga"), _job("b", "b.m4b", book="Saga")])
    _refused(tone, jobs, tmp_path / "out", 1, "book", "Saga.m4b", "line 1")


def test_an_output_inside_the_state_folder_is_refused(tmp_path, tone):
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "a.wav"), _job("b", ".batchtts/chapters/a.flac")])
    _refused(tone, jobs, tmp_path / "out", 2, "output", "state folder")


def test_timings_beside_an_output_may_not_replace_the_job_file(tmp_path, tone):
    jobs = write_jobs(tmp_path / "book.json", [_job("a", "book.mp3")])
    _refused(tone, jobs, tmp_path, 1, "output", "book.json", "job file")


def test_an_output_named_like_the_voice_clip_is_refused(tmp_path, voice_wav, tone):
    (tmp_path / "n.wav").write_bytes(voice_wav.read_bytes())
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "n.wav", voice={"prompt_audio": "n.wav"})])
    _refused(tone, jobs, tmp_path, 1, "output", "n.wav", "voice.prompt_audio")


def test_a_text_file_named_like_a_timings_file_is_an_input(tmp_path, tone):
    (tmp_path / "a.json").write_text(json.dumps({"mine": 1}), encoding="utf-8")
    (tmp_path / "a.srt").write_text("Read me aloud.", encoding="utf-8")
    rec = _job("a", "a.wav", text_file="a.srt")
    del rec["text"]
    jobs = write_jobs(tmp_path / "b.jsonl", [rec])
    _refused(tone, jobs, tmp_path, 1, "output", "a.srt", "text_file")


def test_an_output_that_is_a_folder_fails_before_synthesis(tmp_path, tone):
    (tmp_path / "out" / "a.wav").mkdir(parents=True)
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "a.wav")])
    _refused(tone, jobs, tmp_path / "out", 1, "output", "is a folder")


def test_an_output_name_too_long_for_the_file_system_fails_before_synthesis(tmp_path, tone):
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "x" * 250 + ".wav")])
    _refused(tone, jobs, tmp_path / "out", 1, "output", "too long")
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "a.wav", book="y" * 250)])
    _refused(tone, jobs, tmp_path / "out", 1, "book", "too long")
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "sub/" * 1100 + "a.wav")])
    _refused(tone, jobs, tmp_path / "out", 1, "output", "too long")
    jobs = write_jobs(tmp_path / "b.jsonl", [_job("a", "z" * 256 + "/a.wav")])
    _refused(tone, jobs, tmp_path / "out", 1, "output", "too long")


def test_two_job_files_sharing_an_output_folder_and_ids_are_refused(tmp_path, tone):
    one = write_jobs(tmp_path / "one.jsonl", [_job("ch1", "one.wav")])
    two = write_jobs(tmp_path / "two.jsonl", [_job("ch1", "two.wav")])
    out = tmp_path / "out"
    assert batchtts.run(one, out=out).written
    message = _refused(tone, two, out, 1, "id", str(one.resolve()), "--out")
    assert "one.wav" not in message or "two.wav" not in message
    assert batchtts.run(one, out=out).up_to_date  # the first job file is still served
    one.unlink()  # a renamed or deleted job file no longer owns its ids
    assert batchtts.run(two, out=out).written
