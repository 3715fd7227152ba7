"""The output folder: the one place that knows the paths under `--out` and which chunks are done.

Layout (the state folder is batchtts's own; everything else under `--out` is the user's outputs):

    <out>/.batchtts/ledger.sqlite    checkpoint log (SQLite, WAL)
    <out>/.batchtts/chunks/          content-addressed chunk audio (+ rolling-context speech tokens)
    <out>/.batchtts/voices/          per-engine voice state, by the clip's fingerprint
    <out>/.batchtts/chapters/        stitched chapter PCM, so books are built from lossless audio
    <out>/.batchtts/lock             one run per output folder
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchtts.state.atomic import remove_stale_temps
from batchtts.state.ledger import Ledger
from batchtts.state.lock import OutputLock, linked
from batchtts.state.store import ChunkStore
from batchtts.state.voice import VoiceCache

if TYPE_CHECKING:  # only a type: a chunk's `key` and `rolling` are all this module reads
    from batchtts.text.chunks import Chunk

STATE_DIR = ".batchtts"
LEDGER = "ledger.sqlite"
SUBFOLDERS = ("chapters", "chunks", "voices")
FILES = ("lock", LEDGER, f"{LEDGER}-wal", f"{LEDGER}-shm", f"{LEDGER}-journal")


@dataclass(frozen=True)
class Workspace:
    out_dir: Path

    @property
    def state(self) -> Path:
        return self.out_dir / STATE_DIR

    @property
    def ledger_path(self) -> Path:
        return self.state / LEDGER

    def chapter_pcm(self, job_id: str) -> Path:
        """The stitched chapter before encoding, kept so a book is built from lossless audio."""
        return self.state / "chapters" / f"{job_id}.flac"

    def lock(self) -> OutputLock:
        return OutputLock(self.state / "lock", self.refuse_links)

    def refuse_links(self) -> None:
        """A symbolic link where batchtts writes state would put it, or a truncated user file, outside --out."""
        if self.state.is_symlink():
            raise linked(self.state)
        for name in SUBFOLDERS + FILES:
            if (self.state / name).is_symlink():
                raise linked(self.state / name)
        chunks = self.state / "chunks"
        if chunks.is_dir():
            for sub in os.scandir(chunks):
                if sub.is_symlink():
                    raise linked(Path(sub.path))

    def store(self) -> ChunkStore:
        return ChunkStore(self.state / "chunks")

    def voice_cache(self) -> VoiceCache:
        return VoiceCache(self.state / "voices")

    def open_ledger(self) -> Ledger:
        """The ledger, created if missing: only a run that holds the lock writes it."""
        return Ledger(self.ledger_path)

    def read_ledger(self) -> Ledger | None:
        """The ledger for reading (status, plan), or None before the first run; never creates one."""
        return Ledger(self.ledger_path) if self.ledger_path.exists() else None

    def forget(self) -> None:
        """`--fresh`: drop the ledger and the chunk store; voices and outputs stay."""
        for name in FILES[1:]:
            (self.state / name).unlink(missing_ok=True)
        shutil.rmtree(self.state / "chunks", ignore_errors=True)

    def remove_stale_temps(self, output_folders: Iterable[Path]) -> int:
        """Temp files a killed run left in the state folder and beside the outputs (hold the lock)."""
        return remove_stale_temps(self.state, recursive=True) + sum(
            remove_stale_temps(folder) for folder in {self.out_dir, *output_folders}
        )

    def done(self, ledger: Ledger | None, chunks: Iterable[Chunk]) -> set[str]:
        """Keys that need no synthesis: the ledger says done and the stored file has the recorded size and
        hash (or, unlisted, the file's own tag proves its key), and a rolling-context sentence's speech
        tokens are there to prompt the next one. Every command (run, retry, status, plan) asks this, so
        they never disagree."""
        chunks = list(chunks)
        if not chunks:
            return set()
        store, keys = self.store(), {c.key for c in chunks}
        recorded = ledger.done_chunks(keys) if ledger else {}
        done = {k for k, d in recorded.items() if store.intact(k, d.nbytes, d.sha256, d.updated)}
        done |= {k for k in keys - set(recorded) if store.proven(k)}  # what `run` recovers for a lost ledger
        return done - {c.key for c in chunks if c.rolling and c.key in done and not store.has_tokens(c.key)}
