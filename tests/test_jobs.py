import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.jobs.parse import load_jobs
from tests.conftest import run_cli, write_jobs

GOOD = {"id": "ch1", "text": "Hello there. How are you?", "output": "ch1.wav", "engine": "tone"}


def _case(**changes):
    rec = {**GOOD, **changes}
    return {k: v for k, v in rec.items() if v is not ...}


# (records, line, field, message fragment)
CASES = [
    (['{"id": "ch1", "text": "x"'], 1, None, "not valid JSON"),
    ([GOOD, "[1, 2]"], 2, None, "must be a JSON object"),
    ([GOOD, "null"], 2, None, "must be a JSON object"),
    ([_case(id=...)], 1, "id", "missing"),
    ([_case(id="bad id!")], 1, "id", "must be 1-128 letters"),
    ([_case(id=7)], 1, "id", "must be a string"),
    ([_case(text=...)], 1, "text", "missing"),
    ([_case(text="   \n ")], 1, "text", "is empty"),
    ([_case(text="[scene]\n\n[pause:2]")], 1, "text", "only markers"),
    ([_case(text="Wait [pause:1,5] there.")], 1, "text", "is not [pause:SECONDS]"),
    ([_case(colour="blue")], 1, "colour", "unknown key"),
    ([_case(voice={"prompt_audio": "v.wav", "speed": 2})], 1, "voice.speed", "unknown key"),
    ([_case(text=..., text_file="missing.txt")], 1, "text_file", "cannot read"),
    ([_case(text_file="chapter.txt")], 1, "text_file", "either 'text' or 'text_file'"),
    ([_case(voice={"prompt_audio": "nowhere.wav"})], 1, "voice.prompt_audio", "file not found"),
    ([_case(voice={"prompt_audio": "chapter.txt"})], 1, "voice.prompt_audio", "cannot read audio"),
    ([GOOD, _case(output="other.wav")], 2, "id", "duplicate id 'ch1' (first on line 1)"),
    ([GOOD, _case(id="ch2")], 2, "output", "same output as line 1"),
    ([_case(output=...)], 1, "output", "missing"),
    ([_case(output="../escape.wav")], 1, "output", "leaves the output folder"),
    ([_case(output="/tmp/abs.wav")], 1, "output", "relative to the output folder"),
    ([_case(output="ch1.aiff")], 1, "output", "unsupported format"),
    ([_case(language="fr")], 1, "language", "not one of"),
    ([_case(engine="nonesuch")], 1, "engine", "unknown engine"),
    ([_case(sampling={"temperature": 0.7})], 1, "sampling", "no option 'temperature'"),
    ([_case(sampling={"speed": "fast"})], 1, "sampling.speed", "must be"),
    ([_case(pauses={"sentence": -1})], 1, "pauses.sentence", "outside 0-60"),
    ([_case(pauses={"breath": 1})], 1, "pauses.breath", "unknown key"),
    ([_case(seed=True)], 1, "seed", "must be an integer"),
    ([_case(sample_rate=1000)], 1, "sample_rate", "outside 8000-192000"),
    ([GOOD, "", _case(id="ch2", output="b.wav", title=3)], 3, "title", "must be a string"),
    # issue 16: hostile values get one line before synthesis
    ([_case(text="Hi there. [pause:100000] Bye now.")], 1, "text", "[pause:100000] is outside 0-60 seconds"),
    ([_case(text=..., text_file="long_pause.txt")], 1, "text_file", "[pause:61] is outside 0-60 seconds"),
    ([_case(output="a\u0000.wav")], 1, "output", "NUL character"),
    ([_case(title="x\u0000y")], 1, "title", "NUL character"),
    ([_case(pronunciations={"Hello": "He\u0000llo"})], 1, "pronunciations.Hello", "NUL character"),
    (['{"id": "ch1", "text": "Hello \\ud800 there.", "output": "ch1.wav"}'], 1, "text", "lone surrogate"),
    (['{"id": "ch1", "text": "Hi.", "output": "a.wav", "title": "\\udfff"}'], 1, "title", "lone surrogate"),
    (['{"id": "ch1", "text": "Hi.", "output": "a.wav", "\\ud800": 1}'], 1, None, "lone surrogate"),
    (
        ['{"id": "ch1", "text": "Hi.", "output": "a.wav", "sampling": ' + "[" * 100000 + "]" * 100000 + "}"],
        1,
        None,
        "nested too deeply",
    ),
    (
        ['{"id": "ch1", "text": "Hi.", "output": "a.wav", "sampling": ' + "[" * 500 + "]" * 500 + "}"],
        1,
        None,
        "nested too deeply",
    ),
    ([_case(cover="chapter.txt.png")], 1, "cover", "not a JPEG or PNG image"),
    ([_case(cover="broken.jpg")], 1, "cover", "cannot be decoded"),
    ([_case(pauses={"sentence": None})], 1, "pauses.sentence", "must be a number, got null"),
    ([_case(sampling={"speed": None})], 1, "sampling.speed", "must be a number, got null"),
    ([_case(output="ch1.mp3", sample_rate=96000)], 1, "sample_rate", "mp3 cannot hold 96000 Hz"),
    ([_case(output="ch1.ogg", sample_rate=44100)], 1, "sample_rate", "opus cannot hold 44100 Hz"),
]


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    (tmp_path / "chapter.txt").write_text("A chapter.", encoding="utf-8")
    (tmp_path / "long_pause.txt").write_text("A chapter.\n[pause:61]\nThe end.", encoding="utf-8")
    (tmp_path / "chapter.txt.png").write_text("not a picture", encoding="utf-8")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(60))  # a JPEG's first bytes, then nothing
    return tmp_path


@pytest.mark.parametrize(("records", "line", "field", "fragment"), CASES)
def test_bad_job_files_fail_before_synthesis_with_file_line_and_field(job_dir, records, line, field, fragment):
    jobs = write_jobs(job_dir / "book.jsonl", records)
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(job_dir / "out")])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1
    where = f"{jobs}:{line}: " + (f"field '{field}': " if field else "")
    assert message.startswith(f"batchtts: error: {where}"), message
    assert fragment in message
    assert not (job_dir / "out").exists()  # nothing was started


def test_text_file_that_is_not_utf8_names_the_byte_offset(job_dir):
    (job_dir / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    jobs = write_jobs(job_dir / "book.jsonl", [_case(text=..., text_file="latin1.txt")])
    result = CliRunner().invoke(main, ["run", str(jobs)])
    assert result.exit_code == 2
    assert re.search(r"book.jsonl:1: field 'text_file': .*not UTF-8 \(bad byte at offset 3\)", result.output)


def test_missing_and_empty_job_files(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "job file not found" in result.output
    empty = write_jobs(tmp_path / "empty.jsonl", [""])
    result = CliRunner().invoke(main, ["run", str(empty)])
    assert result.exit_code == 2 and "holds no jobs" in result.output


def test_bad_input_from_a_real_process_exits_2(job_dir):
    jobs = write_jobs(job_dir / "book.jsonl", [_case(engine=...), _case(id="ch2", output="b.wav", extra=1)])
    proc = run_cli("run", str(jobs))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"batchtts: error: {jobs}:2: field 'extra': unknown key (allowed: author, book, "
        "context, cover, engine, id, language, loudness, output, pauses, pronunciations, sample_rate, sampling, seed, "
        "text, text_file, "
        "title, track, verify, voice)"
    )


def test_relative_paths_resolve_against_the_job_file_and_output_against_out(job_dir, voice_wav):
    (job_dir / "voices").mkdir()
    (job_dir / "voices" / "n.wav").write_bytes(voice_wav.read_bytes())
    jobs = write_jobs(
        job_dir / "book.jsonl",
        [
            _case(
                text=...,
                text_file="chapter.txt",
                output="sub/ch1.mp3",
                voice={"prompt_audio": "voices/n.wav", "prompt_text": "hi"},
            )
        ],
    )
    [job] = load_jobs(jobs)
    assert job.text == "A chapter."
    assert job.voice.prompt_audio == (job_dir / "voices" / "n.wav").resolve()
    assert job.output == (job_dir / "out" / "sub" / "ch1.mp3").resolve()
    [job] = load_jobs(jobs, job_dir / "elsewhere")
    assert job.output == (job_dir / "elsewhere" / "sub" / "ch1.mp3").resolve()
