"""Content-addressed chunk audio: one float WAV per chunk key, written atomically."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.atomic import atomic_write_bytes


@dataclass(frozen=True)
class StoredAudio:
    path: Path
    nbytes: int
    sha256: str
    duration: float


class ChunkStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path_for(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.wav"

    def write(self, key: str, audio: np.ndarray, sample_rate: int) -> StoredAudio:
        buf = io.BytesIO()
        sf.write(buf, np.asarray(audio, np.float32), sample_rate, format="WAV", subtype="FLOAT")
        data = buf.getvalue()
        path = self.path_for(key)
        atomic_write_bytes(path, data)
        return StoredAudio(path, len(data), hashlib.sha256(data).hexdigest(), len(audio) / sample_rate)

    def tokens_path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.tokens.json"

    def write_tokens(self, key: str, tokens: tuple[int, ...]) -> None:
        """Speech tokens a chunk decoded; the next sentence of a rolling-context chapter is prompted with them."""
        atomic_write_bytes(self.tokens_path(key), json.dumps(list(tokens)).encode())

    def has_tokens(self, key: str) -> bool:
        return self.read_tokens(key) is not None

    def read_tokens(self, key: str) -> tuple[int, ...] | None:
        try:
            return tuple(json.loads(self.tokens_path(key).read_text()))
        except (OSError, ValueError):
            return None

    def intact(self, key: str, nbytes: int, sha256: str) -> bool:
        """The file is there and is the one the ledger recorded (not truncated, not replaced)."""
        path = self.path_for(key)
        try:
            if path.stat().st_size != nbytes:
                return False
            return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
        except OSError:
            return False

    def sample_rate(self, key: str) -> int:
        return sf.info(str(self.path_for(key))).samplerate

    def read(self, key: str) -> tuple[np.ndarray, int]:
        audio, rate = sf.read(str(self.path_for(key)), dtype="float32")
        return audio, rate
