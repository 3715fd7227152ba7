"""Encode audio to the output's format with tags, atomically.

WAV and FLAC are written by libsndfile (soundfile); compressed formats by one ffmpeg call, which
also carries tags, a cover image and chapter markers (for m4b).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.errors import EnvironmentProblem, Interrupted
from batchtts.jobs.formats import OUTPUT_FORMATS
from batchtts.state.atomic import atomic_path
from batchtts.state.interrupt import received, run_child, temporary

_FFMPEG_ARGS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "96k", "-f", "mp3"],
    "opus": ["-c:a", "libopus", "-b:a", "48k", "-f", "ogg"],
    "aac": ["-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", "-f", "mp4"],
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True)
class Tags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    track: int | None = None
    language: str | None = None
    cover: Path | None = None

    def as_dict(self) -> dict:
        return {k: (str(v) if v is not None else None) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ChapterMark:
    start: float  # seconds
    end: float
    title: str


def require_ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise EnvironmentProblem("ffmpeg is not installed; it encodes mp3/ogg/m4a/m4b (apt-get install ffmpeg)")
    return exe


_NEARLY_FULL = 4 << 20  # bytes: a write that fails with less than this free failed for want of space


def write_failure(path: Path, reason: object, full: bool = False) -> EnvironmentProblem:
    """Exit 4 for a write that failed: 'disk full' when it was, with what to do; finished chunks stay finished."""
    if not full:
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(Path(path).parent).free < _NEARLY_FULL
    if full:
        return EnvironmentProblem(
            f"disk full while writing {path}; free some space and run again (finished chunks are kept)"
        )
    return EnvironmentProblem(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """libsndfile reports a full disk as 'System error' (or worse); map it and OSErrors to exit 4."""
    try:
        yield
    except OSError as exc:
        raise write_failure(Path(exc.filename or path), exc.strerror or exc, exc.errno == errno.ENOSPC) from None
    except sf.LibsndfileError as exc:
        raise write_failure(path, f"libsndfile: {exc.error_string}") from None


def write_pcm(path: Path, audio: np.ndarray, rate: int) -> None:
    """A chapter's stitched audio, lossless (24-bit FLAC), written atomically; a full disk exits 4."""
    with atomic_path(path) as tmp, write_errors(path):
        sf.write(str(tmp), audio, rate, format="FLAC", subtype="PCM_24")


def write_audio(
    path: Path, audio: np.ndarray, rate: int, tags: Tags, chapters: list[ChapterMark] | None = None
) -> None:
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    audio = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp, write_errors(path):
        if fmt in ("wav", "flac"):
            with sf.SoundFile(str(tmp), "w", rate, 1, format=fmt.upper(), subtype="PCM_16") as fh:
                for attr in ("title", "artist", "album"):
                    if getattr(tags, attr):
                        setattr(fh, attr, getattr(tags, attr))
                if tags.track is not None:
                    fh.tracknumber = str(tags.track)
                fh.write(audio)
        else:
            _ffmpeg(tmp, fmt, audio, rate, tags, chapters or [])


def _metadata_file(folder: Path, tags: Tags, chapters: list[ChapterMark]) -> Path:
    def esc(text: str) -> str:
        return "".join("\\" + c if c in "=;#\\\n" else c for c in text)

    lines = [";FFMETADATA1"]
    for key, value in (
        ("title", tags.title),
        ("artist", tags.artist),
        ("album_artist", tags.artist),
        ("album", tags.album),
        ("track", tags.track),
        ("language", tags.language),
    ):
        if value is not None:
            lines.append(f"{key}={esc(str(value))}")
    if chapters and tags.album:
        lines.append("genre=Audiobook")
    for ch in chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(ch.start * 1000)}",
            f"END={round(ch.end * 1000)}",
            f"title={esc(ch.title)}",
        ]
    path = folder / "metadata.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ffmpeg(dest: Path, fmt: str, audio: np.ndarray, rate: int, tags: Tags, chapters: list[ChapterMark]) -> None:
    exe = require_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="batchtts-enc-") as tmp, temporary(Path(tmp)):
        wav = Path(tmp) / "in.wav"
        with write_errors(wav):
            sf.write(str(wav), audio, rate, subtype="PCM_16")
            meta = _metadata_file(Path(tmp), tags, chapters)
        cmd = [exe, "-nostdin", "-v", "error", "-y", "-i", str(wav), "-f", "ffmetadata", "-i", str(meta)]
        maps = ["-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
        if tags.cover is not None and fmt in ("mp3", "aac"):
            cmd += ["-i", str(tags.cover)]
            maps += ["-map", "2:v", "-c:v", "mjpeg" if fmt == "mp3" else "copy", "-disposition:v", "attached_pic"]
        if fmt == "opus" and rate not in OPUS_RATES:
            maps += ["-ar", "48000"]
        if fmt == "mp3":
            maps += ["-id3v2_version", "3"]
        cmd += maps + _FFMPEG_ARGS[fmt] + ["-fflags", "+bitexact", "-flags:a", "+bitexact", str(dest)]
        proc = run_child(cmd)
        if proc.returncode == 255 or proc.returncode < 0:  # ffmpeg exits 255 when a signal stops it
            signum = -proc.returncode if proc.returncode < 0 else received() or signal.SIGINT
            raise Interrupted(f"ffmpeg, encoding {dest.name},", signum)
        if proc.returncode != 0:
            if "No space left on device" in proc.stderr:
                raise write_failure(dest, "no space left on device", full=True)
            raise write_failure(dest, f"ffmpeg: {proc.stderr.strip()[-300:]}")
