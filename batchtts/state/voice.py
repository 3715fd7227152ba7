"""Narrator reference recordings: decoded once, fingerprinted, and their engine state cached on disk."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from batchtts.errors import InputError
from batchtts.state.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

NO_VOICE = "no-voice"


@dataclass(frozen=True)
class VoiceAudio:
    path: Path | None
    prompt_text: str
    samples: np.ndarray  # float32 mono
    sample_rate: int
    fingerprint: str  # hash of the decoded audio and transcript: same recording, same voice

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0

    def resampled(self, rate: int) -> np.ndarray:
        if rate == self.sample_rate:
            return self.samples
        return soxr.resample(self.samples, self.sample_rate, rate).astype(np.float32)


# Reference clip checks (20 ms frames): a frame is silent below -60 dBFS or 40 dB under the loudest frame.
FRAME = 0.02  # seconds
SILENT_DBFS = -60.0
SILENT_BELOW_PEAK_DB = 40.0
MIN_SOUND_SHARE = 0.3  # of the frames: less and the clip is "mostly silence"
MAX_CLIPPED_SHARE = 0.001  # of the samples at full scale (|x| >= 0.999): more and the clip is "clipped"
MAX_EDGE_SILENCE = 0.5  # seconds of leading or trailing silence before the clip is trimmed
EDGE_MARGIN = 0.1  # seconds of silence left at each end when trimming


def check_clip(samples: np.ndarray, rate: int) -> tuple[np.ndarray, str | None, str | None]:
    """(samples to use, why the clip is refused or None, what was trimmed or None) for a mono float32 clip.

    Refused: silent (no frame above -60 dBFS), mostly silence (under 30% of 20 ms frames with sound), or
    clipped (over 0.1% of samples at full scale). Trimmed: more than 0.5 s of silence at either end is cut
    to 0.1 s. A clean clip comes back unchanged (same samples, so the same fingerprint and chunk keys)."""
    n = int(FRAME * rate)
    frames = len(samples) // n if n else 0
    if frames == 0:
        return samples, "is empty", None
    rms = np.sqrt(np.mean(np.square(samples[: frames * n].reshape(frames, n), dtype=np.float64), axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-12))
    if level.max() < SILENT_DBFS:
        return samples, f"is silent (loudest 20 ms at {level.max():.0f} dBFS)", None
    sound = level >= max(SILENT_DBFS, level.max() - SILENT_BELOW_PEAK_DB)
    if sound.mean() < MIN_SOUND_SHARE:
        return samples, f"is mostly silence (sound in {100 * sound.mean():.0f}% of it)", None
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    if clipped > MAX_CLIPPED_SHARE:
        return samples, f"is clipped ({100 * clipped:.1f}% of samples at full scale); record it quieter", None
    first, last = int(np.argmax(sound)), frames - int(np.argmax(sound[::-1]))  # sound in frames [first, last)
    lead, tail = first * FRAME, len(samples) / rate - last * FRAME
    if lead <= MAX_EDGE_SILENCE and tail <= MAX_EDGE_SILENCE:
        return samples, None, None
    margin = int(EDGE_MARGIN * rate)
    start = max(0, first * n - margin) if lead > MAX_EDGE_SILENCE else 0
    end = min(len(samples), last * n + margin) if tail > MAX_EDGE_SILENCE else len(samples)
    note = f"trimmed {lead:.1f} s of leading and {tail:.1f} s of trailing silence"
    return np.ascontiguousarray(samples[start:end]), None, note


def load_voice(path: Path | None, prompt_text: str = "") -> VoiceAudio:
    """Decode a reference clip to mono float32, checked and trimmed by `check_clip`; the fingerprint ignores
    container and tags. Raises InputError (field voice.prompt_audio) for a clip `check_clip` refuses."""
    if path is None:
        return VoiceAudio(None, prompt_text, np.zeros(0, np.float32), 0, NO_VOICE)
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono, refused, trimmed = check_clip(np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), rate)
    if refused:
        raise InputError(Path(path), None, "voice.prompt_audio", f"the voice clip {refused}")
    if trimmed:
        log.warning("voice %s: %s", path, trimmed)
    digest = hashlib.sha256()
    digest.update(str(rate).encode())
    digest.update(mono.tobytes())
    digest.update(prompt_text.encode())
    voice = VoiceAudio(Path(path), prompt_text, mono, rate, digest.hexdigest()[:32])
    if not 3.0 <= voice.duration <= 10.0:
        log.warning("voice %s lasts %.1f s; 3-10 s clips clone best", path, voice.duration)
    return voice


class VoiceCache:
    """Engine state per (engine, voice), kept as .npz files so a resumed run skips preparation."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, engine: str, voice: VoiceAudio, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.folder / f"{engine}-{voice.fingerprint}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return {k: npz[k] for k in npz.files}
            except Exception as exc:  # 0 bytes (EOFError), a broken zip, garbage: a cache is only ever rebuilt
                log.info("voice cache %s unreadable (%s: %s); preparing the voice again", path, type(exc).__name__, exc)
        state = make()
        buf = io.BytesIO()
        np.savez(buf, **state)
        atomic_write_bytes(path, buf.getvalue())
        return state
