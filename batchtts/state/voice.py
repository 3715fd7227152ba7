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


def load_voice(path: Path | None, prompt_text: str = "") -> VoiceAudio:
    """Decode a reference clip to mono float32; the fingerprint ignores container and tags."""
    if path is None:
        return VoiceAudio(None, prompt_text, np.zeros(0, np.float32), 0, NO_VOICE)
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
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
