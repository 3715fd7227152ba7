"""Group pending chunks into batches for the engine.

Chunks with the same key are synthesised once; batches never mix voices (one voice state per
call); within a voice, chunks are sorted by length so the members of a batch are alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchtts.chunks import Chunk


@dataclass(frozen=True)
class Batch:
    voice: str
    chunks: tuple[Chunk, ...]


def plan_batches(chunks: list[Chunk], max_batch: int) -> list[Batch]:
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    unique: dict[str, Chunk] = {}
    for chunk in chunks:
        unique.setdefault(chunk.key, chunk)
    by_voice: dict[str, list[Chunk]] = {}
    for chunk in unique.values():
        by_voice.setdefault(chunk.voice, []).append(chunk)
    batches = []
    for voice, members in by_voice.items():
        members.sort(key=lambda c: -len(c.text))  # stable: ties keep book order
        for i in range(0, len(members), max_batch):
            batches.append(Batch(voice, tuple(members[i : i + max_batch])))
    return batches
