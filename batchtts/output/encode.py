"""Encode audio to the output's format with tags, atomically.

WAV and FLAC are written by libsndfile (soundfile); compressed formats by one ffmpeg call, which
also carries tags, a cover image and chapter markers (for m4b). Audio arrives in windows (`audio_sink`,
`pcm_sink`) and goes to ffmpeg through a pipe, so no file or buffer ever holds a whole chapter or book.
"""

from __future__ import annotations

import contextlib
import errno
import io
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.errors import EnvironmentProblem, Interrupted
from batchtts.jobs.formats import OUTPUT_FORMATS
from batchtts.state.atomic import atomic_path
from batchtts.state.interrupt import child, received, temporary

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


Sink = Callable[[np.ndarray], None]  # takes the next window of a mono float32 signal, shape (n,)


def _raw16(window: np.ndarray, rate: int) -> bytes:
    """16-bit little-endian PCM by libsndfile's own float conversion, the one a WAV file written by soundfile
    gets, so a piped encode sees exactly the samples the WAV-file encode saw."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, format="RAW", subtype="PCM_16", endian="LITTLE") as fh:
        fh.write(window)
    return buf.getvalue()


@contextlib.contextmanager
def pcm_sink(path: Path, rate: int) -> Iterator[Sink]:
    """A chapter's stitched audio, lossless (24-bit FLAC), written window by window and atomically; a full
    disk exits 4."""
    with atomic_path(path) as tmp, write_errors(path):
        with sf.SoundFile(str(tmp), "w", rate, 1, format="FLAC", subtype="PCM_24") as fh:
            yield fh.write


@contextlib.contextmanager
def audio_sink(path: Path, rate: int, tags: Tags, chapters: list[ChapterMark] | None = None) -> Iterator[Sink]:
    """The output file in its format, fed window by window (samples clipped to [-1, 1], 16-bit): WAV and FLAC
    through libsndfile, compressed formats through one ffmpeg reading raw PCM from a pipe. Atomic; exit 4
    on a full disk; Interrupted when a signal stops ffmpeg."""
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    with atomic_path(path) as tmp, write_errors(path):
        if fmt in ("wav", "flac"):
            with sf.SoundFile(str(tmp), "w", rate, 1, format=fmt.upper(), subtype="PCM_16") as fh:
                for attr in ("title", "artist", "album"):
                    if getattr(tags, attr):
                        setattr(fh, attr, getattr(tags, attr))
                if tags.track is not None:
                    fh.tracknumber = str(tags.track)
                yield lambda w: fh.write(np.clip(np.asarray(w, np.float32), -1.0, 1.0))
        else:
            with _ffmpeg(tmp, fmt, rate, tags, chapters or []) as feed:
                yield lambda w: feed(_raw16(np.clip(np.asarray(w, np.float32), -1.0, 1.0), rate))


def write_pcm(path: Path, audio: np.ndarray, rate: int) -> None:
    """The whole-array form of pcm_sink."""
    with pcm_sink(path, rate) as sink:
        sink(np.asarray(audio, np.float32))


def write_audio(
    path: Path, audio: np.ndarray, rate: int, tags: Tags, chapters: list[ChapterMark] | None = None
) -> None:
    """The whole-array form of audio_sink."""
    with audio_sink(path, rate, tags, chapters) as sink:
        sink(audio)


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


@contextlib.contextmanager
def _ffmpeg(dest: Path, fmt: str, rate: int, tags: Tags, chapters: list[ChapterMark]) -> Iterator[Callable]:
    """One ffmpeg encoding raw s16le PCM from its stdin into `dest`; yields the function that feeds it bytes."""
    exe = require_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="batchtts-enc-") as tmp, temporary(Path(tmp)):
        meta = _metadata_file(Path(tmp), tags, chapters)
        # A deep input queue: with the default (8 packets of 100 ms) ffmpeg's main loop naps 10 ms whenever the
        # pipe's reader thread falls behind, which made a 1-hour m4b take 51 s instead of 3 s on a busy machine.
        cmd = [exe, "-nostdin", "-v", "error", "-y", "-thread_queue_size", "4096"]
        cmd += ["-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
        cmd += ["-f", "ffmetadata", "-i", str(meta)]
        maps = ["-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
        if tags.cover is not None and fmt in ("mp3", "aac"):
            cmd += ["-i", str(tags.cover)]
            maps += ["-map", "2:v", "-c:v", "mjpeg" if fmt == "mp3" else "copy", "-disposition:v", "attached_pic"]
        if fmt == "opus" and rate not in OPUS_RATES:
            maps += ["-ar", "48000"]
        if fmt == "mp3":
            maps += ["-id3v2_version", "3"]
        cmd += maps + _FFMPEG_ARGS[fmt] + ["-fflags", "+bitexact", "-flags:a", "+bitexact", str(dest)]
        with open(Path(tmp) / "stderr.txt", "w+b") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
            with child(proc):
                broken = False

                def feed(data: bytes) -> None:
                    nonlocal broken
                    if not broken:
                        try:
                            proc.stdin.write(data)
                        except BrokenPipeError:  # ffmpeg stopped; its exit status and stderr say why
                            broken = True

                try:
                    yield feed
                except BaseException:
                    proc.kill()
                    raise
                finally:
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.close()
                    proc.wait()
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if proc.returncode == 255 or proc.returncode < 0:  # ffmpeg exits 255 when a signal stops it
            signum = -proc.returncode if proc.returncode < 0 else received() or signal.SIGINT
            raise Interrupted(f"ffmpeg, encoding {dest.name},", signum)
        if proc.returncode != 0:
            if "No space left on device" in stderr:
                raise write_failure(dest, "no space left on device", full=True)
            raise write_failure(dest, f"ffmpeg: {stderr.strip()[-300:]}")
