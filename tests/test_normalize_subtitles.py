"""Subtitles every reader reads: cues hold the book's own text on one or two lines, never a blank line; checked by
reading the written .vtt and .srt back with ffmpeg and finding every cue."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from batchtts.engines.embedded.engine import EmbeddedEngine
from batchtts.jobs.types import Job, Source
from batchtts.output.stitch import Cue
from batchtts.output.subtitles import cue_text, write_timings
from batchtts.text.chunks import make_chunks
from batchtts.text.split import split_text

BOOK = (
    "I\n\nDown the Rabbit-Hole\n\nAlice was beginning to get very tired of sitting by her sister on the bank, and of "
    "having nothing to do: once or twice she had peeped into the book her sister was reading.\n\n* * *\n\n"
    "In 1905 she walked 20 m. to No. 7 --> St. Paul’s.\n\n第一回 灵根育孕源流出 心性修持大道生\n\n诗曰：\n\n"
    "混沌未分天地乱，茫茫渺渺无人见。自从盘古破鸿蒙，开辟从兹清浊辨。覆载群生仰至仁，发明万物皆成善。"
)


def _cues() -> list[Cue]:
    job = Job(id="s", text=BOOK, output=Path("s.wav"), source=Source(Path("jobs.jsonl"), 1))
    chunks = make_chunks(job, split_text(BOOK, EmbeddedEngine.max_chars), "v", "embedded", "r", {})
    return [Cue(c.index, c.key, c.source_text, 1.0 + 2 * i, 2.5 + 2 * i) for i, c in enumerate(chunks)]


def test_cue_text_is_one_or_two_lines_never_blank() -> None:
    assert cue_text("I\n\nDown the Rabbit-Hole") == "I Down the Rabbit-Hole"
    long = cue_text("Alice was beginning to get very tired of sitting by her sister on the bank")
    assert len(long.split("\n")) == 2 and all(line.strip() for line in long.split("\n"))
    assert cue_text("[pause:1]") == "…"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing")
@pytest.mark.parametrize("suffix", [".vtt", ".srt"])
def test_every_cue_reads_back_through_ffmpeg(tmp_path: Path, suffix: str) -> None:
    cues = _cues()
    assert cues[3].text == "In 1905 she walked 20 m. to No. 7 --> St. Paul’s."  # the book's text, not the reading
    paths = write_timings(tmp_path / "chapter.m4a", cues, {})
    path = next(p for p in paths if p.suffix == suffix)
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "srt", "-"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    blocks = [b for b in re.split(r"\n\s*\n", out.stdout.strip()) if b.strip()]
    assert len(blocks) == len(cues)
    for block, cue in zip(blocks, cues, strict=True):
        text = " ".join(block.split("\n")[2:])
        expected = cue_text(cue.text).replace("\n", " ")
        assert " ".join(text.split()) == " ".join(expected.split())
