"""Turn a job's segments into keyed chunks: the unit that is synthesised, checkpointed and reused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.jobs.types import Job
from batchtts.text.split import Segment, detect_language

KEY_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    job_id: str
    index: int
    key: str  # hash of everything that decides the audio; equal keys mean equal audio
    text: str  # what the engine speaks: pronunciations applied, whitespace collapsed
    source_text: str  # the sentence as written, for subtitles and manifests
    language: str
    brk: str
    options: dict[str, float]
    voice: str  # voice fingerprint
    pause: float | None = None  # seconds after it, when the text's pause marker sets it
    pause_before: float | None = None  # seconds before the first chunk, from an opening marker
    rolling: bool = False  # prompted by the sentences before it (job context "rolling")
    after: str | None = None  # with rolling context: the key of the sentence before, which must be done first


def apply_pronunciations(text: str, table: dict[str, str]) -> str:
    for word in sorted(table, key=len, reverse=True):
        if re.fullmatch(r"[\w'-]+", word, flags=re.ASCII):
            # A function, so the replacement is taken literally ("\\1" is not a group reference).
            text = re.sub(rf"(?<![\w]){re.escape(word)}(?![\w])", lambda _m, say=table[word]: say, text)
        else:
            text = text.replace(word, table[word])
    return text


def chunk_key(
    text: str,
    language: str,
    voice: str,
    engine: str,
    revision: str,
    options: dict[str, float],
    seed: int,
    after: str | None = None,
    take: int = 0,
) -> str:
    """`after` chains rolling-context chunks: a sentence's audio depends on the ones before it. `take`: the
    take number `batchtts retake` gave this position (0, the first take, leaves the key as it always was)."""
    payload = json.dumps(
        {
            "v": KEY_VERSION,
            "text": text,
            "language": language,
            "voice": voice,
            "engine": engine,
            "revision": revision,
            "options": options,
            "seed": seed,
            **({"after": after} if after else {}),
            **({"take": take} if take else {}),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


def chunk_seed(key: str, attempt: int = 0) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}/{attempt}".encode()).digest()[:4], "big")


def make_chunks(
    job: Job,
    segments: list[Segment],
    voice: str,
    engine: str,
    revision: str | Callable[[str], str],  # or the engine's revision per language
    options: dict[str, float],
    speakable: Callable[[str, str], str] | None = None,
    takes: dict[int, int] | None = None,
) -> list[Chunk]:
    """`speakable`: the engine's text normalisation (Engine.speakable_text), so Chunk.text and the key hold
    exactly what the engine reads. `takes`: chunk position -> take number from `batchtts retake`."""
    chunks: list[Chunk] = []
    rolling = job.context == "rolling"
    for index, seg in enumerate(segments):
        text = " ".join(apply_pronunciations(seg.text, job.pronunciations).split())
        language = detect_language(text) if job.language == "auto" else job.language
        if speakable is not None:
            text = speakable(text, language)
        after = chunks[-1].key if rolling and chunks else None
        rev = revision(language) if callable(revision) else revision
        key = chunk_key(text, language, voice, engine, rev, options, job.seed, after, (takes or {}).get(index, 0))
        chunks.append(
            Chunk(
                job.id,
                index,
                key,
                text,
                seg.text,
                language,
                seg.brk,
                options,
                voice,
                seg.pause,
                seg.pause_before,
                rolling,
                after,
            )
        )
    return chunks
