"""Content-addressed chunk audio: one float WAV per chunk key, written atomically."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.state.atomic import atomic_write_bytes


def _proof(key: str, audio: np.ndarray, rate: int) -> str:
    """Tag stored in each chunk file: its key and a hash of its rate and samples, so the file verifies itself."""
    digest = hashlib.sha256(f"{key}/{rate}/".encode())
    digest.update(np.ascontiguousarray(audio, np.float32).tobytes())
    return f"batchtts-chunk {key} {digest.hexdigest()}"


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
        audio = np.ascontiguousarray(audio, np.float32)
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", sample_rate, 1, format="WAV", subtype="FLOAT") as fh:
            fh.comment = _proof(key, audio, sample_rate)
            fh.write(audio)
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

    def intact(self, key: str, nbytes: int, sha256: str, recorded: float | None = None) -> bool:
        """The file is there and is the one the ledger recorded at `recorded` (not truncated, not replaced)."""
        return unchanged(self.path_for(key), nbytes, sha256, recorded)

    def proven(self, key: str) -> StoredAudio | None:
        """The stored file, if it proves itself: its embedded tag names this key and hashes its samples.

        A file without the tag (written before tags, or replaced), with another chunk's audio, or with any
        changed sample proves nothing. This lets a lost or emptied ledger be refilled from the store.
        """
        path = self.path_for(key)
        try:
            if path.is_symlink() or not path.is_file():
                return None
            data = path.read_bytes()
            with sf.SoundFile(io.BytesIO(data)) as fh:
                tag, rate, channels = fh.comment, fh.samplerate, fh.channels
                audio = fh.read(dtype="float32")
        except (OSError, RuntimeError, ValueError, TypeError):
            return None
        if channels != 1 or not rate or tag != _proof(key, audio, rate):
            return None
        return StoredAudio(path, len(data), hashlib.sha256(data).hexdigest(), len(audio) / rate)

    def sample_rate(self, key: str) -> int:
        return sf.info(str(self.path_for(key))).samplerate

    def read(self, key: str) -> tuple[np.ndarray, int]:
        audio, rate = sf.read(str(self.path_for(key)), dtype="float32")
        return audio, rate


def unchanged(path: Path, nbytes: int, sha256: str, recorded: float | None = None) -> bool:
    """`path` is there with the size and SHA-256 recorded for it. A file whose size matches and whose
    modification time is not after `recorded` (the time.time() at which its digest was recorded, after it was
    written) has not been written since, and is not hashed again: the size-and-mtime check of make, rsync and
    git's index, which keeps `status` and a no-op `run` from reading every chunk and chapter of a long book. A
    file replaced since (new mtime), truncated or grown (new size), or with a clock that puts its mtime after the
    record (another host), is hashed. Not seen: a same-size replacement given an old mtime on purpose (`cp -p`,
    `touch -d`), or one written within a filesystem timestamp tick (a few ms: the kernel stamps files with a
    coarse clock) of the record."""
    try:
        st = path.stat()
        if st.st_size != nbytes:
            return False
        if recorded is not None and st.st_mtime <= recorded:
            return True
        return digest(path) == (nbytes, sha256)
    except OSError:
        return False


def digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, streamed: what the ledger records and checks for every file batchtts writes."""
    with open(path, "rb") as fh:
        return os.fstat(fh.fileno()).st_size, hashlib.file_digest(fh, "sha256").hexdigest()
