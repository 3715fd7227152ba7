"""A book past 24 hours (issue 23): the m4b's chapter markers keep their times (no wrap at 24 h, no 32-bit
sample counter), read back with ffprobe. Near-silent chapters at 8 kHz keep it cheap."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batchtts.output.book import BookChapter, write_book
from batchtts.output.encode import Tags

RATE = 8000
HOURS = (8.5, 8.5, 8.25)  # 25.25 h in all


def _silent_flac(path: Path, hours: float) -> None:
    """A long near-silent chapter PCM: one quiet click at the start, then digital silence (cheap to encode)."""
    total = int(hours * 3600 * RATE)
    block = np.zeros(1 << 20, np.float32)
    with sf.SoundFile(str(path), "w", RATE, 1, format="FLAC", subtype="PCM_24") as fh:
        fh.write(np.full(16, 0.01, np.float32))
        left = total - 16
        while left > 0:
            fh.write(block[: min(left, len(block))])
            left -= len(block)


@pytest.mark.slow
def test_m4b_past_24_hours_keeps_chapter_times(tmp_path):
    chapters = []
    for i, hours in enumerate(HOURS):
        pcm = tmp_path / f"ch{i}.flac"
        _silent_flac(pcm, hours)
        chapters.append(BookChapter(f"Part {i + 1}", tmp_path / f"ch{i}.mp3", pcm, f"sig{i}"))
    m4b = tmp_path / "long.m4b"
    marks = write_book(m4b, chapters, Tags("Long", "Someone", "Long"))
    assert marks[-1].end > 24 * 3600
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-show_format", "-of", "json", str(m4b)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)
    got = [(float(c["start_time"]), float(c["end_time"]), c["tags"]["title"]) for c in probe["chapters"]]
    expected_starts = np.cumsum([0.0, *[h * 3600 for h in HOURS[:-1]]])
    assert [t for _, _, t in got] == ["Part 1", "Part 2", "Part 3"]
    for (start, end, _), mark, want in zip(got, marks, expected_starts, strict=True):
        assert abs(start - mark.start) < 0.002 and abs(end - mark.end) < 0.002
        assert abs(start - want) < 0.002
    assert float(probe["format"]["duration"]) > 25 * 3600
