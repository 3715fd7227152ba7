"""Whole-book outputs: one m4b with a chapter marker at each chapter boundary, and an .m3u playlist."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from batchtts.output.encode import ChapterMark, Tags, audio_sink
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


BLOCK = 1 << 16  # samples read from a chapter's PCM at a time


def _chapter_audio(pcm: Path, rate: int) -> Iterator[np.ndarray]:
    """A chapter's PCM as float32 windows at `rate` (resampled by soxr's stream, which gives the samples its
    one-shot call gives)."""
    with sf.SoundFile(str(pcm)) as fh:
        resampler = None if fh.samplerate == rate else soxr.ResampleStream(fh.samplerate, rate, 1, dtype="float32")
        while True:
            block = fh.read(BLOCK, dtype="float32")
            last = len(block) < BLOCK
            if resampler is not None:
                block = resampler.resample_chunk(block, last=last)
            if len(block):
                yield block
            if last:
                return


def write_book(m4b: Path, chapters: list[BookChapter], tags: Tags) -> list[ChapterMark]:
    """Concatenate the chapters' audio and mark each start exactly where its first sample lands. Streamed:
    the chapter marks come from the PCM files' lengths (a chapter at another rate is counted by resampling
    it once first), then the audio flows window by window into the encoder. Positions are Python ints, and
    the mp4 muxer writes 64-bit chunk offsets (co64) when a book passes 4 GB."""
    rate = sf.info(str(chapters[0].pcm)).samplerate
    marks, pos = [], 0
    for ch in chapters:
        info = sf.info(str(ch.pcm))
        length = info.frames if info.samplerate == rate else sum(len(b) for b in _chapter_audio(ch.pcm, rate))
        marks.append(ChapterMark(pos / rate, (pos + length) / rate, ch.title))
        pos += length
    with audio_sink(m4b, rate, tags, marks) as sink:
        for ch in chapters:
            for block in _chapter_audio(ch.pcm, rate):
                sink(block)
    return marks


def write_playlist(m3u: Path, chapters: list[BookChapter], marks: list[ChapterMark]) -> None:
    lines = ["#EXTM3U"]
    for ch, mark in zip(chapters, marks, strict=True):
        rel = Path(ch.output).relative_to(m3u.parent) if ch.output.is_relative_to(m3u.parent) else ch.output
        lines += [f"#EXTINF:{round(mark.end - mark.start)},{ch.title}", rel.as_posix()]
    atomic_write_bytes(m3u, ("\n".join(lines) + "\n").encode("utf-8"))
