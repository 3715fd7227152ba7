"""Assemble a chapter from its chunks so it sounds like one continuous read.

Each chunk's edges are trimmed of silence (keeping a natural margin) and faded, pauses are inserted
by rule or by the text's own markers, and loudness is normalised once for the whole chapter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import soxr

from batchtts.jobs.types import Loudness as LoudnessSpec
from batchtts.jobs.types import Pauses
from batchtts.output.encode import Tags
from batchtts.output.loudness import Loudness, normalize
from batchtts.text.split import COMMA, END, HARD, PARAGRAPH, PAUSE, SENTENCE

STITCH_VERSION = 2
FADE_SECONDS = 0.008  # keeps joins click-free without eating consonants
HARD_CUT_PAUSE = 0.05
TRIM_FRAME = 0.010
TRIM_RELATIVE_DB = -40.0  # below the chunk's loudest 10 ms frame counts as silence...
TRIM_FLOOR_DB = -60.0  # ...and so does anything under this absolute level
TRIM_MARGIN = 0.04  # natural breath kept at each edge


@dataclass(frozen=True)
class Piece:
    audio: np.ndarray
    sample_rate: int
    brk: str
    text: str = ""
    key: str = ""
    pause: float | None = None  # explicit pause after, from a marker


@dataclass(frozen=True)
class Cue:
    index: int
    key: str
    text: str
    start: float  # seconds in the stitched chapter
    end: float


@dataclass(frozen=True)
class Chapter:
    audio: np.ndarray
    rate: int
    cues: list[Cue]
    loudness: Loudness | None

    @property
    def duration(self) -> float:
        return len(self.audio) / self.rate


def pause_after(piece: Piece, pauses: Pauses) -> float:
    if piece.brk == PAUSE:
        return piece.pause or 0.0
    return {
        SENTENCE: pauses.sentence,
        COMMA: pauses.comma,
        PARAGRAPH: pauses.paragraph,
        HARD: HARD_CUT_PAUSE,
        END: 0.0,
    }[piece.brk]


def trim(audio: np.ndarray, rate: int) -> np.ndarray:
    """Drop leading and trailing silence, keeping TRIM_MARGIN of it."""
    frame = max(1, int(rate * TRIM_FRAME))
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loudest = float(rms.max())
    if loudest <= 10 ** (TRIM_FLOOR_DB / 20):
        return audio[:0]
    threshold = max(loudest * 10 ** (TRIM_RELATIVE_DB / 20), 10 ** (TRIM_FLOOR_DB / 20))
    voiced = np.flatnonzero(rms > threshold)
    margin = int(rate * TRIM_MARGIN)
    start = max(0, voiced[0] * frame - margin)
    end = min(len(audio), (voiced[-1] + 1) * frame + margin)
    return audio[start:end]


def _faded(audio: np.ndarray, rate: int) -> np.ndarray:
    n = min(int(rate * FADE_SECONDS), len(audio) // 2)
    if n == 0:
        return audio
    out = audio.copy()
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def assemble_stream(
    pieces: Iterable[Piece],
    rate: int,
    pauses: Pauses,
    cues: list[Cue],
    lead: float | None = None,
    trim_edges: bool = True,
) -> Iterator[np.ndarray]:
    """The chapter as float32 windows (one piece or pause at a time), appending where each piece landed to
    `cues`; pieces are consumed lazily, so only one chunk's audio is held at a time. Sample positions are
    Python ints (no 32-bit counter)."""
    head = np.zeros(round((pauses.chapter_start + (lead or 0.0)) * rate), np.float32)
    yield head
    pos = len(head)
    for i, piece in enumerate(pieces):
        audio = np.asarray(piece.audio, np.float32)
        if piece.sample_rate != rate and len(audio):
            audio = soxr.resample(audio, piece.sample_rate, rate).astype(np.float32)
        if trim_edges:
            audio = trim(audio, rate)
        audio = _faded(audio, rate)
        cues.append(Cue(i, piece.key, piece.text, pos / rate, (pos + len(audio)) / rate))
        gap = np.zeros(round(pause_after(piece, pauses) * rate), np.float32)
        yield audio
        yield gap
        pos += len(audio) + len(gap)
    yield np.zeros(round(pauses.chapter_end * rate), np.float32)


def assemble(
    pieces: list[Piece], rate: int, pauses: Pauses, lead: float | None = None, trim_edges: bool = True
) -> tuple[np.ndarray, list[Cue]]:
    """Concatenate pieces with their pauses; returns the audio and where each piece landed."""
    cues: list[Cue] = []
    audio = np.concatenate(list(assemble_stream(pieces, rate, pauses, cues, lead, trim_edges)))
    return audio, cues


def build_chapter(
    pieces: list[Piece], rate: int, pauses: Pauses, loudness: LoudnessSpec, lead: float | None = None
) -> Chapter:
    audio, cues = assemble(pieces, rate, pauses, lead)
    if not loudness.enabled:
        return Chapter(np.clip(audio, -1.0, 1.0), rate, cues, None)
    audio, level = normalize(audio, rate, loudness.target, loudness.true_peak)
    return Chapter(audio, rate, cues, level)


def signature(
    keys: list[str],
    pieces_meta: list[tuple[str, float | None]],
    pauses: Pauses,
    lead: float | None,
    loudness: LoudnessSpec,
    rate: int,
    suffix: str,
    tags: Tags,
) -> str:
    """Everything that decides the chapter's bytes: equal signatures mean the file need not be rewritten."""
    payload = json.dumps(
        {
            "v": STITCH_VERSION,
            "keys": keys,
            "breaks": pieces_meta,
            "pauses": asdict(pauses),
            "lead": lead,
            "loudness": asdict(loudness),
            "rate": rate,
            "format": suffix.lower(),
            "tags": tags.as_dict(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()
