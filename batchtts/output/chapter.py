"""Stitch, normalise and encode one chapter in bounded windows: peak memory does not depend on its length.

The assembled chapter goes to a float32 scratch file beside the chapter PCM (4 bytes a sample: 318 MB an
hour at 22.05 kHz, removed when the chapter is written), measured on the way; each gain-and-limit round of
output.loudness.normalize then rewrites the scratch in place in one pass (the limiter is the identity where
no true peak exceeds its ceiling, so one pass serves both branches), measuring its own output; a last pass
feeds the chapter PCM and the encoder together. The samples are bit-identical to the whole-array
`build_chapter`, and so are the files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from batchtts.jobs.types import Loudness as LoudnessSpec
from batchtts.jobs.types import Pauses
from batchtts.output.encode import Tags, audio_sink, pcm_sink, write_errors
from batchtts.output.loudness import (
    SILENCE_LUFS,
    WINDOW,
    Loudness,
    LoudnessMeter,
    PeakLimiter,
    gain_for,
)
from batchtts.output.stitch import Cue, Piece, assemble_stream
from batchtts.state.atomic import TEMP_PREFIX
from batchtts.state.interrupt import temporary

_F32 = 4  # bytes per scratch sample


@dataclass(frozen=True)
class StitchedChapter:
    samples: int
    rate: int
    cues: list[Cue]
    loudness: Loudness | None
    scratch_bytes: int  # the most temporary disk the chapter used (0 when loudness is left as synthesised)

    @property
    def duration(self) -> float:
        return self.samples / self.rate


def _windows(parts: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Re-cut a stream of arrays into WINDOW-sample windows (the last may be shorter, never empty)."""
    pending: list[np.ndarray] = []
    size = 0
    for part in parts:
        if not len(part):
            continue
        pending.append(part)
        size += len(part)
        while size >= WINDOW:
            joined = np.concatenate(pending)
            yield joined[:WINDOW]
            rest = joined[WINDOW:]
            pending, size = ([rest] if len(rest) else []), len(rest)
    if size:
        yield np.concatenate(pending)


def _read(fd: int, start: int, count: int) -> np.ndarray:
    data = os.pread(fd, count * _F32, start * _F32)
    return np.frombuffer(data, np.float32)


def _write(fd: int, start: int, audio: np.ndarray) -> None:
    data = np.ascontiguousarray(audio, np.float32).tobytes()
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, start * _F32)
        view, start = view[written:], start + written // _F32


T = TypeVar("T")
_END = object()


def _ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, computed on a thread of their own up to `depth` ahead of the caller: a two-stage pipeline.
    One worker advances the iterator, so it runs in order as it would alone; its exceptions reach the caller."""
    with ThreadPoolExecutor(1, thread_name_prefix="batchtts-limiter") as pool:
        pending = deque(pool.submit(next, items, _END) for _ in range(depth))
        while (item := pending.popleft().result()) is not _END:
            pending.append(pool.submit(next, items, _END))
            yield item


def _limited(fd: int, samples: int, gain: float, limiter: PeakLimiter) -> Iterator[tuple[np.ndarray, bool]]:
    """(limited samples, whether they are the last) for each window of the scratch, gained."""
    for start in range(0, samples, WINDOW):
        last = start + WINDOW >= samples
        x = (_read(fd, start, min(WINDOW, samples - start)) * gain).astype(np.float32)
        yield limiter.feed(x, last=last), last


def _scratch_pass(fd: int, samples: int, rate: int, gain: float, ceiling_db: float) -> Loudness:
    """Gain then limit the scratch in place (writes trail reads), measuring the result. The limiter runs a
    window ahead on its own thread while this one measures and writes (soxr, scipy's lfilter and numpy leave the
    interpreter lock free): about half the wall time of a round, the same samples."""
    meter, written = LoudnessMeter(rate), 0
    for out, last in _ahead(_limited(fd, samples, gain, PeakLimiter(rate, ceiling_db))):
        meter.feed(out, last=last)
        _write(fd, written, out)
        written += len(out)
    if written != samples:
        raise AssertionError(f"limiter returned {written} of {samples} samples")
    return meter.result()


def _true_peak(fd: int, samples: int, rate: int) -> float:
    meter = LoudnessMeter(rate)
    for start in range(0, samples, WINDOW):
        meter.feed(_read(fd, start, min(WINDOW, samples - start)))
    meter.feed(np.zeros(0, np.float32), last=True)
    return meter.result().true_peak_db


def _normalize_scratch(fd: int, samples: int, rate: int, first: Loudness, sound: bool, spec: LoudnessSpec) -> Loudness:
    """output.loudness.normalize over the scratch file: the same rounds, the same samples."""
    if not sound:
        return first
    ceiling = spec.true_peak - 0.3  # head-room for the encoder's own overshoot
    level = first
    for _ in range(10):
        if level.integrated_lufs <= SILENCE_LUFS:
            return level
        level = _scratch_pass(fd, samples, rate, gain_for(level, spec.target), ceiling)
        if abs(level.integrated_lufs - spec.target) <= 0.1 and level.true_peak_db <= spec.true_peak:
            break
    return level


@contextlib.contextmanager
def _scratch(folder: Path, name: str) -> Iterator[int]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f"-{name}.f32", dir=folder)
    try:
        with temporary(Path(path)), write_errors(Path(path)):
            yield fd
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def stitch_chapter(
    pieces: Iterable[Piece],
    rate: int,
    pauses: Pauses,
    loudness: LoudnessSpec,
    lead: float | None,
    pcm: Path,
    output: Path,
    tags: Tags,
) -> StitchedChapter:
    """Assemble `pieces` (consumed lazily), normalise, and write the chapter PCM (`pcm`, 24-bit FLAC) and the
    output file (`output`, its format by suffix). Memory: a few windows and one chunk; disk: the scratch."""
    cues: list[Cue] = []
    stream = _windows(assemble_stream(pieces, rate, pauses, cues, lead))
    if not loudness.enabled:
        samples = 0
        with pcm_sink(pcm, rate) as to_pcm, audio_sink(output, rate, tags) as to_out:
            for window in stream:
                window = np.clip(window, -1.0, 1.0)
                to_pcm(window)
                to_out(window)
                samples += len(window)
        return StitchedChapter(samples, rate, cues, None, 0)
    with _scratch(pcm.parent, pcm.stem) as fd:
        # The assembled chapter's true peak is reported only when nothing is normalised (silence): measured
        # then, in a pass of its own, instead of oversampling every chapter once more.
        meter, samples = LoudnessMeter(rate, true_peak=False), 0
        for window in stream:
            meter.feed(window)
            _write(fd, samples, window)
            samples += len(window)
        meter.feed(np.zeros(0, np.float32), last=True)
        first = meter.result()
        if not meter.any_sound or first.integrated_lufs <= SILENCE_LUFS:
            first = Loudness(first.integrated_lufs, _true_peak(fd, samples, rate))
        level = _normalize_scratch(fd, samples, rate, first, meter.any_sound, loudness)
        with pcm_sink(pcm, rate) as to_pcm, audio_sink(output, rate, tags) as to_out:
            for start in range(0, samples, WINDOW):
                window = _read(fd, start, min(WINDOW, samples - start))
                to_pcm(window)
                to_out(window)
    return StitchedChapter(samples, rate, cues, level, samples * _F32)
