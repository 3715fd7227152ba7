"""What a job is once validated: plain frozen data that every later stage reads and none changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batchtts.errors import InputError

LANGUAGES = ("auto", "en", "zh")
CONTEXTS = ("prompt", "rolling")


@dataclass(frozen=True)
class Source:
    """Where a job came from, so later stages can still point at the offending line."""

    path: Path
    line: int

    def error(self, field: str | None, message: str) -> InputError:
        return InputError(self.path, self.line, field, message)


@dataclass(frozen=True)
class Voice:
    prompt_audio: Path | None = None
    prompt_text: str = ""


@dataclass(frozen=True)
class Pauses:
    """Silence, in seconds, inserted after each kind of break."""

    sentence: float = 0.45
    comma: float = 0.25
    paragraph: float = 1.0
    chapter_start: float = 0.3
    chapter_end: float = 1.0
    scene: float = 2.0  # a scene break (`[scene]`, or a `* * *` line)
    line: float = 0.35  # the end of a verse line (`[line]`) where a chunk ends there


@dataclass(frozen=True)
class Loudness:
    """Per-chapter loudness normalization (EBU R128 style); `enabled=False` keeps the engine's level."""

    target: float = -18.0  # LUFS, integrated, a common audiobook level
    true_peak: float = -1.5  # dBTP ceiling
    enabled: bool = True


ASR_CHOICES = ("auto", "whisper", "pocketsphinx")


@dataclass(frozen=True)
class Verify:
    """ASR verification of every take (job field `verify`); `asr=None` (`"verify": false`) turns it off.

    `asr`: "auto" picks the best backend available per language (verify/stage.py), or a backend by name.
    `max_error`: highest WER (English) / CER (Chinese) that passes; None: the backend's default per language.
    `retakes`: new-seed takes after the first for a chunk that does not pass; the best take is kept.
    """

    asr: str | None = "auto"
    max_error: float | None = None
    retakes: int = 2


@dataclass(frozen=True)
class Job:
    id: str
    text: str
    output: Path
    source: Source
    voice: Voice = Voice()
    language: str = "auto"
    sample_rate: int | None = None
    seed: int = 0
    engine: str | None = None
    sampling: dict[str, float] = field(default_factory=dict)
    pauses: Pauses = Pauses()
    title: str | None = None
    book: str | None = None
    author: str | None = None
    track: int | None = None
    pronunciations: dict[str, str] = field(default_factory=dict)
    cover: Path | None = None
    loudness: Loudness = Loudness()
    context: str = "prompt"  # or "rolling": each sentence also prompted by the sentences before it
    text_file: Path | None = None  # where `text` was read from: an input no output may replace
    verify: Verify = Verify()
