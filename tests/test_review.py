"""status --json, the review page (rendered in headless Chromium when it is installed) and `retake`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import batchtts
from batchtts.cli import main
from tests.conftest import HANG_GUARD_S, write_jobs
from tests.test_verify import WrongTextEngine  # noqa: F401 - registers the "wrongtext" engine

CHUNK_FIELDS = {"index", "key", "text", "source", "state", "attempts", "takes", "flagged", "asr"}


@pytest.fixture(scope="module")
def flagged_out(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("review")
    jobs = write_jobs(
        root / "jobs.jsonl",
        [
            {"id": "bad", "engine": "wrongtext", "language": "en", "output": "bad.wav", "title": "A <wrong> one",
             "text": "The lamp was lit at six every evening. Nobody came to the island that winter.",
             "verify": {"asr": "pocketsphinx", "retakes": 0}},
        ],
    )  # fmt: skip
    batchtts.run(jobs, out=root / "out", progress=False)
    return jobs, root / "out"


def test_status_json_schema(flagged_out):
    jobs, out = flagged_out
    result = CliRunner().invoke(main, ["status", str(jobs), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    (job,) = doc["jobs"]
    assert {"id", "output", "chunks", "done", "left", "failed", "flagged", "written"} <= set(job)
    assert job["id"] == "bad" and job["done"] == 2 and job["flagged"] == 2 and job["written"] is True
    for n, c in enumerate(job["chunks"]):
        assert set(c) == CHUNK_FIELDS
        assert c["index"] == n and c["state"] == "done" and c["flagged"] is True and c["attempts"] == 1
        assert c["asr"]["metric"] == "wer" and c["asr"]["error"] > 0.5 and isinstance(c["asr"]["transcript"], str)
        assert c["text"] and c["source"]
    text = CliRunner().invoke(main, ["status", str(jobs), "--out", str(out)])
    assert "flagged chunks" in text.output and "bad#1" in text.output


def test_review_page_lists_flagged_takes_with_playable_audio(flagged_out, tmp_path):
    jobs, out = flagged_out
    page = batchtts.review(jobs, out=out)
    assert page == out / "review.html"
    doc = page.read_text(encoding="utf-8")
    assert doc.count("<audio") == 2 and "A &lt;wrong&gt; one" in doc and "http" not in doc
    for src in ("review/bad-00000.wav", "review/bad-00001.wav"):
        assert f'src="{src}"' in doc and (out / src).stat().st_size > 1000
    assert "<mark>" in doc or "<del>" in doc  # differences are marked
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    shot = tmp_path / "review.png"
    run = subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1000,800", page.as_uri()],
        capture_output=True, text=True, timeout=HANG_GUARD_S,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 5000, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert dom.stdout.count("<audio") == 2, dom.stderr[-2000:]
    # The browser decodes and plays a take by the page's own relative path (a one-line page beside review.html).
    probe = out / "play-probe.html"
    probe.write_text(
        '<!doctype html><div id="r">pending</div><script>const a = new Audio("review/bad-00000.wav");'
        'a.muted = true; a.onerror = () => { r.textContent = "media error " + a.error.code; };'
        'a.onloadedmetadata = () => a.play().then(() => { r.textContent = "played " + a.duration.toFixed(1); },'
        ' e => { r.textContent = "refused " + e; });</script>',
        encoding="utf-8",
    )
    played = subprocess.run(
        [chromium, *flags, "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=HANG_GUARD_S,
    )  # fmt: skip
    assert '<div id="r">played ' in played.stdout, played.stdout[-500:] + played.stderr[-1000:]


def test_retake_redoes_exactly_the_named_chunks(tmp_path, tone):
    text = "The bell rang twice. A dog barked at the gate. The bell rang twice. Then all was quiet."
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "a", "engine": "tone", "output": "a.wav", "text": text}])
    out = tmp_path / "out"
    batchtts.run(jobs, out=out, progress=False)
    before = batchtts.chunks(jobs, out=out)
    assert before[0].key == before[2].key  # the same sentence twice: one key, one take
    tone.calls.clear()
    result = CliRunner().invoke(main, ["retake", str(jobs), "--out", str(out), "--job", "a", "--chunk", "2"])
    assert result.exit_code == 0 and "a#2" in result.output, result.output
    after = batchtts.chunks(jobs, out=out)
    changed = [c.index for b, c in zip(before, after, strict=True) if b.key != c.key]
    assert changed == [2]
    summary = batchtts.run(jobs, out=out, progress=False)
    assert summary.synthesized == 1 and [k for call in tone.calls for k in call] == [after[2].key]
    assert str(out / "a.wav") in summary.written
    again = CliRunner().invoke(main, ["retake", str(jobs), "--out", str(out), "--job", "a", "--match", "dog"])
    assert again.exit_code == 0 and [c.index for c in batchtts.chunks(jobs, out=out) if c.key not in
                                      {x.key for x in after}] == [1]  # fmt: skip
    bad = CliRunner().invoke(main, ["retake", str(jobs), "--out", str(out), "--job", "a", "--chunk", "9"])
    assert bad.exit_code == 2 and "chunks 0 to 3" in bad.output


def test_retake_without_chunk_or_match_names_the_options(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "a", "output": "a.wav", "text": "One. Two."}])
    result = CliRunner().invoke(main, ["retake", str(jobs), "--out", str(tmp_path / "out"), "--job", "a"])
    assert result.exit_code == 2
    assert "--chunk" in result.output and "None" not in result.output, result.output


def test_review_of_a_folder_nothing_has_run_into_is_one_line_exit_2(tmp_path):
    job = {"id": "a", "engine": "tone", "output": "a.wav", "text": "Hello there."}
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job])
    out = tmp_path / "never" / "run"
    result = CliRunner().invoke(main, ["review", str(jobs), "--out", str(out)])
    assert result.exit_code == 2 and "nothing has run" in result.output, result.output
    assert not out.exists()  # no folder made, no empty page written
