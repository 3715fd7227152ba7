"""Hostile input never ends in a traceback or touches a file outside the output folder (issue 16).

The examples pin the defects one by one; the property test feeds generated job lines, valid fields
mixed with hostile values, through `plan` and `run` on the tone engine (HOSTILE_LOG=FILE appends each
outcome to FILE, to count them).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import batchtts
import batchtts.planning.prepare
from batchtts.cli import main
from tests.conftest import write_jobs

JOB = {"id": "a", "text": "Hello there. How are you today?", "output": "a.wav", "engine": "tone"}


def _one_line(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and message.startswith("batchtts: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_run_refuses_a_kv_budget_no_chunk_fits_before_synthesis_like_plan(tmp_path, tone):
    jobs, out = write_jobs(tmp_path / "b.jsonl", [JOB]), tmp_path / "out"
    planned = _one_line(CliRunner().invoke(main, ["plan", str(jobs), "--kv-budget", "1"]), 2, "budget is 1 B")
    tone.calls.clear()
    ran = _one_line(CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--kv-budget", "1"]), 2)
    assert ran == planned and tone.calls == [] and not out.exists()


def test_device_cuda_without_a_cuda_torch_is_one_line_exit_4(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    jobs, out = write_jobs(tmp_path / "b.jsonl", [JOB]), tmp_path / "out"
    _one_line(CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--device", "cuda"]), 4, "CUDA")
    _one_line(CliRunner().invoke(main, ["plan", str(jobs), "--device", "cuda"]), 4, "CUDA")
    assert not out.exists()


def test_an_event_log_that_cannot_be_opened_stops_before_anything_is_written(tmp_path):
    jobs, out = write_jobs(tmp_path / "b.jsonl", [JOB]), tmp_path / "out"
    log = jobs / "events.jsonl"  # its folder is a file
    _one_line(CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--log-json", str(log)]), 4, "event log")
    assert not out.exists()
    log = tmp_path / "logs" / "events.jsonl"  # a missing folder is made, as for --out
    assert CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--log-json", str(log)]).exit_code == 0
    assert log.is_file()


@pytest.mark.parametrize("manifest", ["{}", "[1, 2]", '{"chunks": 3}', '{"chunks": [{"start": "0"}]}', "{", "\xff"])
def test_waveform_on_a_bad_manifest_is_one_line_exit_2(tmp_path, manifest):
    chapter = tmp_path / "a.wav"
    sf.write(chapter, [0.0] * 800, 8000)
    chapter.with_suffix(".json").write_text(manifest, encoding="latin-1")
    _one_line(CliRunner().invoke(main, ["waveform", str(chapter)]), 2, "timings manifest")
    assert not chapter.with_suffix(".png").exists()


def test_sigint_while_inputs_are_checked_is_one_line_exit_130(tmp_path, monkeypatch):
    check = batchtts.planning.prepare.check_targets

    def interrupted(*args):
        # Python's own SIGINT handler, as Ctrl-C runs it in the main thread. Not os.kill on this pid: once in CI,
        # after ~140 earlier tests in the same process, that signal did not interrupt the run (it went on and
        # exited 0; the cause was not found), and what this test checks is the CLI's answer to the interrupt.
        signal.default_int_handler(signal.SIGINT, None)
        return check(*args)

    monkeypatch.setattr(batchtts.planning.prepare, "check_targets", interrupted)
    jobs, out = write_jobs(tmp_path / "b.jsonl", [JOB]), tmp_path / "out"
    _one_line(CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)]), 130, "interrupted")
    assert not out.exists()


def test_an_output_folder_whose_name_is_not_utf8_is_one_line_exit_2(tmp_path):
    jobs = write_jobs(tmp_path / "b.jsonl", [JOB])
    out = Path(os.fsdecode(bytes(tmp_path) + b"/out\xff"))
    _one_line(CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)]), 2, "not UTF-8")
    assert not out.exists()


def test_a_pronunciation_is_replaced_literally(tmp_path):
    jobs = write_jobs(tmp_path / "b.jsonl", [{**JOB, "pronunciations": {"Hello": r"\1 \g<0>"}}])
    # Taken literally (not as a group reference), then read by the book-text normaliser like any digits and symbols.
    assert batchtts.chunks(jobs)[0].text.startswith("one g zero there.")


# ---- the property test ----

NAN, INF = float("nan"), float("inf")
HOSTILE_STRINGS = ["", " ", "\u0000", "a\u0000b", "\ud800", "x\udfffy", "x" * 300, "../../escape", "/etc/passwd", 7]
NUMBERS = [0, -1, 1, 0.5, 61, 8000, 96000, 2**70, -(2**70), 1e308, NAN, INF, -INF, True, "1", None]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


FIELDS = {
    "id": st.sampled_from(["b", "a.1", "A_b-2", "", "a b", "a\n", "x" * 129, *HOSTILE_STRINGS]),
    "text": st.sampled_from(
        [
            "Good morning. [pause:2] Fine day.",
            "Hi there. [pause:100000] Bye now.",
            "[pause:61]",
            "!!! ???",
            "第一句。第二句！",
            "Line one.\n\nLine two.",
            "&amp; &#0; &#x10FFFF;",
            *HOSTILE_STRINGS,
        ]
    ),
    "text_file": st.sampled_from(
        ["chapter.txt", "out/inside.txt", "missing.txt", "voice.wav", "book.jsonl", "../outside.txt", "."]
    ),
    "output": st.sampled_from(
        [
            "b.wav",
            "c.flac",
            "d.mp3",
            "e.m4b",
            "Saga.m4b",
            "sub/f.ogg",
            "a.mp3",
            "voice.wav",
            "inside.wav",
            "book.wav",
            "chapter.srt",
            ".batchtts/chapters/a.flac",
            ".batchtts/lock",
            "../escape.wav",
            "/tmp/abs.wav",
            "sub",
            "a.txt",
            "y" * 260 + ".wav",
            *HOSTILE_STRINGS,
        ]
    ),
    "voice": st.sampled_from(
        [
            {"prompt_audio": "voice.wav", "prompt_text": "Hello."},
            {"prompt_audio": "out/inside.wav"},
            {"prompt_audio": "missing.wav"},
            {"prompt_audio": "chapter.txt"},
            {"prompt_audio": 5},
            {"speed": 1},
            {"prompt_text": "\ud800"},
            "voice.wav",
            _nested(40),
        ]
    ),
    "sample_rate": st.sampled_from(NUMBERS + [16000, 44100]),
    "pauses": st.sampled_from([{"sentence": n} for n in NUMBERS] + [{"breath": 1}, [], "long"]),
    "pronunciations": st.sampled_from(
        [{"Hello": r"\1"}, {"": "x"}, {"Hi": 3}, {"Good": "[pause:100000]"}, {"fine": "\u0000"}, {"a": "b" * 1000}]
    ),
    "cover": st.sampled_from(["cover.jpg", "cover.jpg", "broken.jpg", "notimage.png", "missing.jpg", "chapter.txt", 1]),
    "book": st.sampled_from(["Saga", "War and Peace", "War/and/Peace", "a", "", "x" * 300, "../..", "\ud800"]),
    "title": st.sampled_from(["Chapter", *HOSTILE_STRINGS]),
    "author": st.sampled_from(["Someone", *HOSTILE_STRINGS]),
    "track": st.sampled_from(NUMBERS),
    "seed": st.sampled_from(NUMBERS),
    "loudness": st.sampled_from([False, True, {"target": NAN}, {"target": -20, "true_peak": -1}, {"x": 1}, "loud"]),
    "sampling": st.sampled_from([{"speed": n} for n in (0, -1, NAN, INF, 2.0, "x")] + [{"temperature": 1}]),
    "context": st.sampled_from(["prompt", "rolling", "other", 1]),
    "language": st.sampled_from(["en", "zh", "auto", "fr", None]),
    "engine": st.sampled_from(["tone", "tone", "nonesuch", 3]),
    "colour": st.just("blue"),
    "deep": st.sampled_from([33, 5000]),  # levels of nesting, written into the line as text
}


@st.composite
def job_line(draw, n: int) -> str:
    """A valid job, then zero to three fields replaced by values drawn from FIELDS, some lines broken."""
    record = {**JOB, "id": f"j{n}", "output": f"j{n}.{draw(st.sampled_from(['wav', 'flac', 'mp3', 'm4b']))}"}
    depth = 0
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=draw(st.sampled_from([0, 0, 1, 1, 2, 3])))):
        value = draw(FIELDS[key])
        if key == "deep":
            key, depth, value = draw(st.sampled_from(["sampling", "voice", "title"])), value, "<deep>"
        record[key] = value
    if "text_file" in record and draw(st.booleans()):
        record.pop("text")
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    line = line.replace('"<deep>"', "[" * depth + "]" * depth)
    broken = ["", "null", "[", '{"id": "x"', "\u0000", line[:-1], line + line]
    return draw(st.sampled_from([line] * 12 + broken))


@st.composite
def job_file(draw) -> list[str]:
    return [draw(job_line(n)) for n in range(draw(st.integers(1, 3)))]


def _job_folder(root: Path, voice_wav: Path) -> None:
    (root / "out").mkdir()
    (root / "voice.wav").write_bytes(voice_wav.read_bytes())
    (root / "out" / "inside.wav").write_bytes(voice_wav.read_bytes())
    (root / "chapter.txt").write_text("A chapter read aloud. [pause:1] It ends.", encoding="utf-8")
    (root / "out" / "inside.txt").write_text("Another chapter, kept in the output folder.", encoding="utf-8")
    (root.parent / "outside.txt").write_text("A text outside the job folder.", encoding="utf-8")
    Image.new("RGB", (8, 8), (200, 120, 40)).save(root / "cover.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(60))
    (root / "notimage.png").write_text("not a picture", encoding="utf-8")


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=job_file())
@example(lines=[json.dumps({**JOB, "output": "a.mp3", "cover": "broken.jpg"})])  # found by a 1500-example run
@example(lines=[json.dumps({**JOB, "output": "a.m4b", "book": "B", "cover": "cover.jpg"})])
@example(lines=[json.dumps({**JOB, "pauses": {"sentence": None}})])  # found by a longer run
def test_hostile_job_lines_end_in_exit_0_1_or_2_and_touch_nothing_outside_the_output_folder(voice_wav, lines):
    with tempfile.TemporaryDirectory(prefix="batchtts-hostile-") as tmp:
        root = Path(tmp) / "job"
        root.mkdir()
        _job_folder(root, voice_wav)
        jobs = root / "book.jsonl"
        jobs.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
        before = _snapshot(root)
        for command in ("plan", "run"):
            result = CliRunner().invoke(main, [command, str(jobs), "--out", str(root / "out"), "--kv-budget", "1GiB"])
            assert result.exception is None or isinstance(result.exception, SystemExit), (lines, result.output)
            assert result.exit_code in (0, 1, 2), (command, lines, result.output)
            assert "Traceback" not in result.output
            if os.environ.get("HOSTILE_LOG"):
                with open(os.environ["HOSTILE_LOG"], "a") as fh:
                    fh.write(json.dumps([command, result.exit_code, result.output.strip()[-150:]]) + "\n")
        after = _snapshot(root)
        assert {p: b for p, b in after.items() if p in before} == before, lines  # no file changed or deleted
        assert all(p.is_relative_to(root / "out") for p in after.keys() - before.keys()), lines  # new ones in out/
