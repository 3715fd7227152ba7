"""Whole-book outputs: one m4b with a chapter marker at each chapter boundary, and an .m3u playlist."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from batchtts.output.encode import ChapterMark, Tags, write_audio
from batchtts.state.atomic import atomic_write_bytes


@dataclass(frozen=True)
class BookChapter:
    title: str
    output: Path  # the chapter's own file, listed in the playlist
    pcm: Path  # its stitched audio before encoding, so the book is encoded once from lossless audio
    signature: str


def book_signature(chapters: list[BookChapter], tags: Tags) -> str:
    payload = json.dumps({"v": 1, "chapters": [(c.title, c.signature) for c in chapters], "tags": tags.as_dict()})
    return hashlib.sha256(payload.encode()).hexdigest()


def write_book(m4b: Path, chapters: list[BookChapter], tags: Tags) -> list[ChapterMark]:
    """Concatenate the chapters' audio and mark each start exactly where its first sample lands."""
    parts, marks = [], []
    rate = None
    pos = 0
    for ch in chapters:
        audio, r = sf.read(str(ch.pcm), dtype="float32")
        rate = rate or r
        if r != rate:
            audio = soxr.resample(audio, r, rate).astype(np.float32)
        marks.append(ChapterMark(pos / rate, (pos + len(audio)) / rate, ch.title))
        parts.append(audio)
        pos += len(audio)
    write_audio(m4b, np.concatenate(parts), rate, tags, marks)
    return marks


def write_playlist(m3u: Path, chapters: list[BookChapter], marks: list[ChapterMark]) -> None:
    lines = ["#EXTM3U"]
    for ch, mark in zip(chapters, marks, strict=True):
        rel = Path(ch.output).relative_to(m3u.parent) if ch.output.is_relative_to(m3u.parent) else ch.output
        lines += [f"#EXTINF:{round(mark.end - mark.start)},{ch.title}", rel.as_posix()]
    atomic_write_bytes(m3u, ("\n".join(lines) + "\n").encode("utf-8"))
