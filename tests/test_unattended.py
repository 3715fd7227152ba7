"""Cron-friendly behaviour: the failure policy, event logs, retry, doctor, odd text, and the nightly script."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.jobs import textfile as jobs_module
from batchtts.verify.quality import check
from tests.conftest import HANG_GUARD_S, ROOT, run_cli, write_jobs

TEXT = "The first sentence is here. The second one follows. A third closes the chapter."


def _jobs(tmp_path: Path, text: str = TEXT, **extra) -> Path:
    return write_jobs(
        tmp_path / "book.jsonl", [{"id": "ch", "text": text, "output": "ch.wav", "engine": "tone", **extra}]
    )


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_quality_checks_catch_nan_silence_dropped_words_and_babbling():
    rate = 16000
    speech = (0.2 * np.sin(np.arange(rate * 2) / 7)).astype(np.float32)
    text = "A sentence of ordinary length."
    assert check(text, "en", speech, rate) is None
    assert "NaN" in check(text, "en", np.full(rate, np.nan, np.float32), rate)
    assert "silent" in check(text, "en", np.zeros(rate, np.float32), rate)
    assert "too short" in check(text, "en", speech[: rate // 10], rate)
    assert "maximum length" in check(text, "en", speech, rate, truncated=True)
    assert "too long" in check(text, "en", np.tile(speech, 20), rate)
    assert "too short" in check("一二三四五六七八九十一二三四五六七八九十", "zh", speech[: rate // 2], rate)


def test_a_failing_chunk_is_retried_with_new_seeds_then_marked_failed_and_retry_redoes_only_it(tmp_path, tone):
    jobs = _jobs(tmp_path)
    tone.fail_texts.add("The second one follows.")
    result = invoke("run", str(jobs), "--retries", "3", "--log-json", str(tmp_path / "events.jsonl"))
    assert result.exit_code == 1
    assert "1 chunks failed" in result.output and "batchtts retry" in result.output
    seeds_tried = [k for call in tone.calls for k in call]
    failing = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    retries = [e for e in failing if e["event"] == "chunk" and e["state"] == "retry"]
    bad_key = retries[0]["key"]
    # the batch call fails, its chunks are tried alone, then the bad one gets three new seeds
    assert len(retries) == 3 and seeds_tried.count(bad_key) == 1 + 1 + 3
    status = invoke("status", str(jobs))
    assert "failed chunks:" in status.output and "RuntimeError: cannot say" in status.output
    tone.fail_texts.clear()
    tone.calls.clear()
    result = invoke("retry", str(jobs))
    assert result.exit_code == 0, result.output
    assert [len(c) for c in tone.calls] == [1]  # only the failed chunk
    assert (tmp_path / "out" / "ch.wav").exists()


def test_fail_fast_stops_at_the_first_failed_chunk(tmp_path, tone):
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": "a", "text": TEXT, "output": "a.wav", "engine": "tone"},
            {
                "id": "b",
                "text": "Another chapter entirely, written out at length.",
                "output": "b.wav",
                "engine": "tone",
            },
        ],
    )
    tone.fail_texts.add("The first sentence is here.")
    result = invoke("run", str(jobs), "--fail-fast", "--retries", "0", "--max-batch", "1")
    assert result.exit_code == 1 and "--fail-fast" in result.output
    assert sum(map(len, tone.calls)) < 4


def test_json_event_log_has_one_event_per_batch_chunk_and_job(tmp_path):
    jobs = _jobs(tmp_path)
    log = tmp_path / "logs" / "events.jsonl"
    assert invoke("run", str(jobs), "--log-json", str(log), "--max-batch", "2").exit_code == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("chunk") == 3 and kinds.count("batch") == 2 and kinds.count("job") == 1
    end = events[-1]
    for field in ("synthesised", "failed", "reused", "audio_hours", "wall_seconds", "real_time_factor", "peak_rss_mib"):
        assert field in end
    assert invoke("run", str(jobs), "--log-json", str(log)).exit_code == 0  # appends
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()][-3:] == ["run_start", "job", "run_end"]


ODD_TEXTS = {
    "emoji": "The lamp 🔥 was lit. We were happy 😀 about it!",
    "control": "Line one.\x07\x1b[31m Line two\x00 here.\r\nLine three.",
    "no-punctuation": "word " * 2000,
    "mixed-scripts": "Привет, мир. Hello world. 你好世界。Γειά σου κόσμε.",
    "html-entities": "Fish &amp; chips &mdash; &quot;classic&quot; &#8220;food&#8221; at 5&nbsp;pm.",
    "zero-width": "Zero\u200bwidth\u200d joiners\ufeff here.",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ODD_TEXTS))
def test_odd_text_yields_speech_or_a_clear_chunk_error_never_a_crash(tmp_path, name):
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "odd", "text": ODD_TEXTS[name], "output": "odd.flac"}])
    proc = run_cli("run", str(jobs), "-v")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:
        manifest = json.loads((tmp_path / "out" / "odd.json").read_text())
        assert manifest["duration"] > 1.0
        assert all("&amp;" not in c["text"] and "\x00" not in c["text"] for c in manifest["chunks"])
    else:
        assert "failed chunk" in proc.stderr


def test_only_punctuation_is_bad_input(tmp_path):
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "p", "text": "... !!! ??? —", "output": "p.wav"}])
    result = invoke("run", str(jobs))
    assert result.exit_code == 2 and "has nothing to speak" in result.output


def test_absolute_outputs_need_allow_abs_paths(tmp_path):
    target = tmp_path / "elsewhere" / "ch.wav"
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text": TEXT, "output": str(target), "engine": "tone"}])
    assert invoke("run", str(jobs)).exit_code == 2
    assert invoke("run", str(jobs), "--allow-abs-paths").exit_code == 0 and target.exists()


def test_an_oversized_text_file_is_refused_before_it_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs_module, "MAX_TEXT_BYTES", 3 << 20)
    monkeypatch.setattr(jobs_module, "_BLOCK", 1 << 20)
    (tmp_path / "big.txt").write_bytes(b"All work and no play. " * 200_000)  # 4.4 MB
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text_file": "big.txt", "output": "a.wav"}])
    result = invoke("run", str(jobs))
    assert result.exit_code == 2 and "is over 3 MiB; split it" in result.output


def test_bad_utf8_deep_in_a_big_file_names_its_offset(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs_module, "_BLOCK", 1000)
    (tmp_path / "t.txt").write_bytes(b"a" * 2500 + b"\xff" + b"b" * 10)
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text_file": "t.txt", "output": "a.wav"}])
    result = invoke("run", str(jobs))
    assert result.exit_code == 2 and "bad byte at offset 2500" in result.output


def test_doctor_reports_programs_models_device_and_output_folder(tmp_path):
    result = invoke("doctor", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    for name in ("python", "ffmpeg", "espeak-ng", "device", "engine embedded: model", "output folder"):
        assert any(line.startswith("ok") and name in line for line in result.output.splitlines()), name


def test_doctor_fails_with_exit_4_when_a_program_is_missing(tmp_path):
    env = {**os.environ, "PATH": str(Path(os.sys.executable).parent)}  # no ffmpeg, no espeak-ng
    proc = subprocess.run(
        [os.sys.executable, "-m", "batchtts", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4
    assert "FAIL ffmpeg" in proc.stdout and "apt-get install ffmpeg" in proc.stdout


@pytest.mark.slow
def test_nightly_cron_script_runs_every_job_file_and_logs_exit_codes(tmp_path):
    (tmp_path / "jobs").mkdir()
    write_jobs(tmp_path / "jobs" / "good.jsonl", [{"id": "a", "text": "A short nightly chapter.", "output": "a.wav"}])
    write_jobs(tmp_path / "jobs" / "bad.jsonl", [{"id": "a", "text": "Oops.", "output": "a.wav", "colour": 1}])
    env = {**os.environ, "BATCHTTS_HOME": str(tmp_path), "BATCHTTS": str(Path(os.sys.executable).parent / "batchtts")}
    proc = subprocess.run(
        ["bash", str(ROOT / "examples" / "cron" / "nightly.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 1
    log = (tmp_path / "logs" / "nightly.log").read_text()
    assert "jobs/good.jsonl rc=0 done" in log and "jobs/bad.jsonl rc=2 bad input" in log
    assert (tmp_path / "out" / "good" / "a.wav").exists()
    assert (tmp_path / "logs" / "good.events.jsonl").exists()
