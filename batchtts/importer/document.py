"""What every reader (EPUB, Markdown, text) hands the job-file writer: chapters with their accounting.

Characters are counted without whitespace, so that for every chapter `source == kept + dropped`: a
difference would be text lost without a reason, the failure an import must never hide.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Invisible formatting an engine should never see: soft hyphens, zero-width marks, control characters.
_INVISIBLE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u200b-\u200d\u2060\ufeff]")
_ENDS_SENTENCE = tuple(".!?。！？…:;：；")


def clean(text: str) -> str:
    """Text as the job parser will see it (NFC, no invisible characters), before counting."""
    return unicodedata.normalize("NFC", _INVISIBLE_RE.sub("", text))


def nonspace(text: str) -> int:
    """Characters that are not whitespace (str.split() splits on exactly the str.isspace() characters)."""
    return len("".join(text.split()))


def join_heading(lines: list[str]) -> tuple[str, int]:
    """Lines of one heading as one spoken sentence ("CHAPTER I" + "Loomings" -> "CHAPTER I. Loomings");
    returns the text and the characters added."""
    parts = [" ".join(line.split()) for line in lines]
    parts = [p for p in parts if p]
    out, added = "", 0
    for part in parts:
        if out:
            if not out.endswith(_ENDS_SENTENCE):
                out += "."
                added += 1
            out += " "
        out += part
    return out, added


@dataclass
class Block:
    """One paragraph of cleaned text (a heading is a paragraph of its own)."""

    text: str
    heading: bool = False


@dataclass
class Chapter:
    title: str
    blocks: list[Block] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # files (or file:line) the text came from
    source_chars: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> characters
    added_chars: int = 0  # punctuation joining heading lines, a title spoken where the text had none
    link_chars: int = 0  # characters inside links (a contents page is mostly links)

    @property
    def text(self) -> str:
        """Paragraphs separated by blank lines (the splitter's paragraph pause); ends with a newline."""
        return "\n\n".join(b.text for b in self.blocks) + "\n"

    @property
    def kept_chars(self) -> int:
        return sum(nonspace(b.text) for b in self.blocks) - self.added_chars

    @property
    def dropped_chars(self) -> int:
        return sum(self.dropped.values())

    @property
    def unaccounted(self) -> int:
        """Characters neither kept nor dropped with a reason: always 0 unless a reader has a bug."""
        return self.source_chars - self.kept_chars - self.dropped_chars

    def absorb(self, other: Chapter) -> None:
        """Append `other` (a document the navigation does not name) to this chapter."""
        self.blocks += other.blocks
        self.sources += [s for s in other.sources if s not in self.sources]
        self.source_chars += other.source_chars
        self.dropped.update(other.dropped)
        self.added_chars += other.added_chars
        self.link_chars += other.link_chars

    def speak_title_first(self) -> None:
        """Make the chapter open with its heading (then a paragraph pause), adding the title if absent."""
        if self.blocks and self.blocks[0].heading:
            return
        if self.blocks and _fold(self.blocks[0].text).startswith(_fold(self.title)):
            self.blocks[0].heading = True
            return
        self.blocks.insert(0, Block(" ".join(self.title.split()), heading=True))
        self.added_chars += nonspace(self.title)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class LeftOut:
    """A part of the source not made into a chapter, and why (front/back matter, a header...)."""

    what: str
    reason: str
    chars: int


@dataclass
class Book:
    source: Path
    kind: str  # "EPUB 3", "EPUB 2", "Markdown", "Markdown folder", "text", "text folder"
    title: str
    author: str | None = None
    language: str | None = None
    cover: tuple[bytes, str] | None = None  # image bytes and suffix (.jpg/.png)
    chapters: list[Chapter] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
