"""Turn a job's segments into keyed chunks: the unit that is synthesised, checkpointed and reused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.jobs.markup import strip_markers
from batchtts.jobs.types import Job
from batchtts.text.normalize import normalize
from batchtts.text.normalize.common import PROTECT_CLOSE, PROTECT_OPEN
from batchtts.text.split import LINE, PAUSE, SCENE, Segment, detect_language

# The key format. The book-text normaliser (text.normalize) writes Chunk.text, so a change to its readings
# changes the keys of the chunks it reads differently (and only those); KEY_VERSION itself is unchanged.
KEY_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    job_id: str
    index: int
    key: str  # hash of everything that decides the audio; equal keys mean equal audio
    text: str  # what the engine speaks: pronunciations applied, book-text normalised, engine frontend applied
    source_text: str  # the book's own text of this chunk (markers dropped), for subtitles, manifests, status
    language: str
    brk: str
    options: dict[str, float]
    voice: str  # voice fingerprint
    pause: float | None = None  # seconds after it, when the text's pause marker sets it
    pause_before: float | None = None  # seconds before the first chunk, from an opening marker
    rolling: bool = False  # prompted by the sentences before it (job context "rolling")
    after: str | None = None  # with rolling context: the key of the sentence before, which must be done first


def apply_pronunciations(text: str, table: dict[str, str], protect: bool = False) -> str:
    """The job's `pronunciations` applied to the source text, longest entry first. With `protect`, each
    replacement that is already words (no digit or symbol the normaliser would read) is wrapped in the
    normaliser's protection marks, so `{"1905": "nineteen five"}` is read as given and not normalised again."""
    marks = {}
    for say in table.values():
        keep = protect and not re.search(r"[\d/\\@_*#~%$£€¥&+=]", say)
        marks[say] = f"{PROTECT_OPEN}{say}{PROTECT_CLOSE}" if keep else say
    for word in sorted(table, key=len, reverse=True):
        say = marks[table[word]]
        if re.fullmatch(r"[\w'-]+", word, flags=re.ASCII):
            # A function, so the replacement is taken literally ("\\1" is not a group reference).
            text = re.sub(rf"(?<![\w]){re.escape(word)}(?![\w])", lambda _m, say=say: say, text)
        else:
            text = text.replace(word, say)
    return text


def source_of(text: str) -> str:
    """The book's own text of a segment as a reader sees it: markers dropped, whitespace collapsed."""
    return " ".join(strip_markers(text).split())


def reading(text: str, language: str, pronunciations: dict[str, str]) -> str:
    """What a narrator reads for `text` (a segment's source) in `language`, before the engine's own frontend:
    pronunciations first, then the book-text normaliser, whitespace collapsed."""
    said = normalize(apply_pronunciations(text, pronunciations, protect=True), language)
    return " ".join(said.split())


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
    """`speakable`: the engine's own text normalisation (Engine.speakable_text), run after the book-text
    normaliser, so Chunk.text and the key hold exactly what the engine reads. A segment's SCENE or LINE break
    becomes a PAUSE of the job's `pauses.scene` / `pauses.line` seconds. `takes`: chunk position -> take number
    from `batchtts retake` (0: the first take, which leaves the key as before)."""
    chunks: list[Chunk] = []
    rolling = job.context == "rolling"
    for index, seg in enumerate(segments):
        source = source_of(seg.text)
        language = detect_language(source) if job.language == "auto" else job.language
        text = reading(seg.text, language, job.pronunciations)
        if speakable is not None:
            text = speakable(text, language)
        after = chunks[-1].key if rolling and chunks else None
        brk, pause = seg.brk, seg.pause
        if brk in (SCENE, LINE):  # the job's pause for a scene break or a verse line, as an explicit pause
            brk, pause = PAUSE, job.pauses.scene if brk == SCENE else job.pauses.line
        rev = revision(language) if callable(revision) else revision
        key = chunk_key(text, language, voice, engine, rev, options, job.seed, after, (takes or {}).get(index, 0))
        chunks.append(
            Chunk(
                job.id,
                index,
                key,
                text,
                source,
                language,
                brk,
                options,
                voice,
                pause,
                seg.pause_before,
                rolling,
                after,
            )
        )
    return chunks
