"""Join a chapter's chunks with pauses into one file, written atomically in the job's format."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from batchtts.atomic import atomic_path
from batchtts.errors import EnvironmentProblem
from batchtts.formats import OUTPUT_FORMATS
from batchtts.jobs import Pauses
from batchtts.split import COMMA, END, HARD, PARAGRAPH, SENTENCE

STITCH_VERSION = 1
FADE_SECONDS = 0.005  # keeps joins click-free without eating consonants
HARD_CUT_PAUSE = 0.05


@dataclass(frozen=True)
class Piece:
    audio: np.ndarray
    sample_rate: int
    brk: str


@dataclass(frozen=True)
class Tags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    track: int | None = None


def pause_after(brk: str, pauses: Pauses) -> float:
    return {
        SENTENCE: pauses.sentence,
        COMMA: pauses.comma,
        PARAGRAPH: pauses.paragraph,
        HARD: HARD_CUT_PAUSE,
        END: pauses.chapter_end,
    }[brk]


def _faded(audio: np.ndarray, rate: int) -> np.ndarray:
    n = min(int(rate * FADE_SECONDS), len(audio) // 2)
    if n == 0:
        return audio
    out = audio.copy()
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def assemble(pieces: list[Piece], rate: int, pauses: Pauses) -> np.ndarray:
    parts = [np.zeros(round(pauses.chapter_start * rate), np.float32)]
    for piece in pieces:
        audio = piece.audio.astype(np.float32)
        if piece.sample_rate != rate and len(audio):
            audio = soxr.resample(audio, piece.sample_rate, rate).astype(np.float32)
        parts.append(_faded(audio, rate))
        parts.append(np.zeros(round(pause_after(piece.brk, pauses) * rate), np.float32))
    return np.clip(np.concatenate(parts), -1.0, 1.0)


def signature(keys: list[str], brks: list[str], pauses: Pauses, rate: int, output: Path, tags: Tags) -> str:
    """Everything that decides the chapter's bytes: equal signatures mean the file need not be rewritten."""
    payload = json.dumps(
        {
            "v": STITCH_VERSION,
            "keys": keys,
            "brks": brks,
            "pauses": asdict(pauses),
            "rate": rate,
            "format": output.suffix.lower(),
            "tags": asdict(tags),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def write_audio(path: Path, audio: np.ndarray, rate: int, tags: Tags) -> None:
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    with atomic_path(path) as tmp:
        if fmt == "mp3":
            _write_mp3(tmp, audio, rate, tags)
        else:
            with sf.SoundFile(str(tmp), "w", rate, 1, format=fmt.upper(), subtype="PCM_16") as fh:
                for attr in ("title", "artist", "album"):
                    if getattr(tags, attr):
                        setattr(fh, attr, getattr(tags, attr))
                if tags.track is not None:
                    fh.tracknumber = str(tags.track)
                fh.write(audio)


def _write_mp3(path: Path, audio: np.ndarray, rate: int, tags: Tags) -> None:
    if shutil.which("ffmpeg") is None:
        raise EnvironmentProblem("ffmpeg is not installed; it encodes MP3 (apt-get install ffmpeg)")
    from pydub import AudioSegment  # imported here: pydub warns at import when ffmpeg is absent

    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    segment = AudioSegment(pcm.tobytes(), frame_rate=rate, sample_width=2, channels=1)
    meta = {
        k: str(v)
        for k, v in (("title", tags.title), ("artist", tags.artist), ("album", tags.album), ("track", tags.track))
        if v is not None
    }
    segment.export(
        str(path),
        format="mp3",
        bitrate="96k",
        tags=meta or None,
        parameters=["-fflags", "+bitexact", "-flags:a", "+bitexact"],
    ).close()
