"""Chapters that sound like one recording, and the whole-book m4b, on the real default engine and ffmpeg."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, run_cli, write_jobs

pytestmark = pytest.mark.slow  # the book fixture runs the real engine through the CLI in a subprocess

CH1 = (
    "The keeper climbed the stair at six. The lamp was cold, and the glass was wet with spray. "
    "She wound the clock, lit the wick, and watched the beam sweep the water.\n\n"
    "Far out, a ship answered with a single light. [pause:1.5] Then the storm came in."
)
CH2 = (
    "山路尽头有一家小茶馆。老板每天清晨五点烧水。\n\n"
    "Visitors still ask about the picture, and he still does not explain."
)


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness and true peak as ffmpeg's own EBU R128 meter reads them."""
    err = subprocess.run(
        ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = err[err.rindex("Summary:") :]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    return lufs, peak


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("book")
    from PIL import Image

    Image.new("RGB", (32, 32), (10, 90, 160)).save(tmp / "cover.png")
    jobs = write_jobs(
        tmp / "book.jsonl",
        [
            {
                "id": "one",
                "text": CH1,
                "output": "one.flac",
                "title": "The Stair",
                "book": "Two Lights",
                "author": "Tester",
                "track": 1,
                "cover": "cover.png",
            },
            {
                "id": "two",
                "text": CH2,
                "output": "two.mp3",
                "title": "茶馆",
                "book": "Two Lights",
                "author": "Tester",
                "track": 2,
                "loudness": {"target": -20, "true_peak": -2},
            },
        ],
    )
    proc = run_cli("run", str(jobs), "-v")
    assert proc.returncode == 0, proc.stderr
    return tmp


def test_chapter_loudness_hits_the_target_and_peaks_stay_under_the_limit(book):
    for name, target, limit in (("one.flac", -18.0, -1.5), ("two.mp3", -20.0, -2.0)):
        lufs, peak = ebur128(book / "out" / name)
        assert abs(lufs - target) <= 0.5, (name, lufs)
        assert peak <= limit + (0.3 if name.endswith(".mp3") else 0.0), (name, peak)  # mp3 may overshoot a hair
        manifest = json.loads((book / "out" / name).with_suffix(".json").read_text())
        assert abs(manifest["loudness_lufs"] - target) <= 0.1


def test_joins_have_no_sample_jumps(book):
    audio, rate = sf.read(book / "out" / "one.flac", dtype="float32")
    manifest = json.loads((book / "out" / "one.json").read_text())
    for chunk in manifest["chunks"]:
        for t in (chunk["start"], chunk["end"]):
            i = round(t * rate)
            window = audio[max(0, i - 2) : i + 2]
            assert np.abs(np.diff(window)).max(initial=0) < 0.01, (chunk["text"], t)
            assert np.abs(window).max() < 0.01  # each join sits in faded-out silence


def test_subtitles_match_chunk_boundaries_within_one_frame(book):
    audio, rate = sf.read(book / "out" / "one.flac", dtype="float32")
    manifest = json.loads((book / "out" / "one.json").read_text())
    srt = (book / "out" / "one.srt").read_text()
    vtt = (book / "out" / "one.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)", srt)
    assert len(stamps) == len(manifest["chunks"]) == 5
    frame = 0.010
    for chunk, st in zip(manifest["chunks"], stamps, strict=True):
        start = int(st[0]) * 3600 + int(st[1]) * 60 + int(st[2]) + int(st[3]) / 1000
        end = int(st[4]) * 3600 + int(st[5]) * 60 + int(st[6]) + int(st[7]) / 1000
        assert abs(start - chunk["start"]) <= frame and abs(end - chunk["end"]) <= frame
        # the cue covers the chunk's sound: audible inside, silence just outside
        inside = audio[round(chunk["start"] * rate) : round(chunk["end"] * rate)]
        assert np.abs(inside).max() > 0.05
        before = audio[max(0, round(chunk["start"] * rate) - round(frame * rate)) : round(chunk["start"] * rate)]
        assert np.abs(before).max(initial=0) < 1e-3
    texts = [c["text"] for c in manifest["chunks"]]
    assert "Far out, a ship answered with a single light." in texts and not any("[pause" in t for t in texts)
    gaps = [b["start"] - a["end"] for a, b in zip(manifest["chunks"], manifest["chunks"][1:], strict=False)]
    assert gaps[3] == pytest.approx(1.5, abs=0.01)  # the inline marker's pause


def test_the_book_m4b_has_a_marker_at_each_chapter_and_a_playlist(book):
    m4b = book / "out" / "Two-Lights.m4b"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", "-show_format", str(m4b)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    probe = json.loads(out)
    one = sf.info(book / "out" / ".batchtts" / "chapters" / "one.flac").duration
    chapters = probe["chapters"]
    assert [c["tags"]["title"] for c in chapters] == ["The Stair", "茶馆"]
    assert float(chapters[0]["start_time"]) == 0.0
    assert float(chapters[1]["start_time"]) == pytest.approx(one, abs=0.001)
    assert probe["format"]["tags"]["album"] == "Two Lights"
    playlist = (book / "out" / "Two-Lights.m3u").read_text().splitlines()
    assert playlist[0] == "#EXTM3U" and playlist[2] == "one.flac" and playlist[4] == "two.mp3"
    assert playlist[3].endswith(",茶馆")


def test_changing_pauses_or_loudness_restitches_without_synthesis(book):
    jobs = book / "book.jsonl"
    text = jobs.read_text().replace('"target": -20', '"target": -23')
    jobs.write_text(text)
    before = (book / "out" / "one.flac").read_bytes()
    proc = run_cli("run", str(jobs), "-v")
    assert proc.returncode == 0, proc.stderr
    assert "0 synthesised" in proc.stderr and "two.mp3" in proc.stderr and "Two-Lights.m4b" in proc.stderr
    assert (book / "out" / "one.flac").read_bytes() == before
    assert abs(ebur128(book / "out" / "two.mp3")[0] + 23) <= 0.5


def test_make_audiobook_builds_the_example_book(tmp_path):
    proc = subprocess.run(["make", "-s", "audiobook", f"OUT={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    m4b = tmp_path / "Lanterns.m4b"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(m4b)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [c["tags"]["title"] for c in json.loads(out)["chapters"]] == ["The Lighthouse", "山间茶馆", "Two Languages"]


def test_waveform_picture_of_a_chapter(book, tmp_path):
    proc = run_cli("waveform", str(book / "out" / "two.mp3"), "-o", str(tmp_path / "two.png"))
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(tmp_path / "two.png") as img:
        assert img.size[0] > 1000 and img.format == "PNG"
