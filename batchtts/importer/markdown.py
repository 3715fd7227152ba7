"""Markdown to chapters: rendered by markdown-it-py, then read like any HTML (see xhtml.py).

One file is cut at its headings (`heading_level`, default: the highest level that occurs at least
twice); a folder (a course) gives one chapter per file in natural sort order ("2" before "10").
"""

from __future__ import annotations

from pathlib import Path

from batchtts.errors import InputError
from batchtts.importer.document import Book, Chapter, LeftOut
from batchtts.importer.plaintext import _pretty, read_utf8
from batchtts.importer.semantics import HEADINGS, local
from batchtts.importer.semantics import speakable_words as speakable
from batchtts.importer.xhtml import Walker, parse

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")


def _render(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def auto_level(levels: list[int]) -> int:
    """The highest heading level that occurs at least twice (a lone top heading is the title); 0: none."""
    for level in range(1, 7):
        if levels.count(level) >= 2:
            return level
    return 0


def read_markdown_file(path: Path, heading_level: int | None, book: Book, whole: bool = False) -> list[Chapter]:
    """Chapters of one file; `whole` (a course folder) keeps it as one chapter unless a level is given."""
    html = _render(read_utf8(path))
    root = parse(html, xml=False)
    levels = [int(local(h.tag)[1]) for h in root.iter(*HEADINGS)]
    level = heading_level if heading_level is not None else (0 if whole else auto_level(levels))
    segments = Walker(cut_level=level).walk(root)
    if not any(speakable(b.text) for s in segments for b in s.blocks):
        raise InputError(path, None, None, "no text to speak (empty Markdown file)")
    first_heading = next((b.text for s in segments for b in s.blocks if b.heading), None)
    lone_top = bool(levels) and levels.count(min(levels)) == 1
    chapters: list[Chapter] = []
    for seg in segments:
        ch = Chapter(
            seg.heading_title or "",
            list(seg.blocks),
            [path.name],
            seg.source_chars,
            seg.dropped.copy(),
            seg.added_chars,
        )
        if not ch.blocks and not ch.source_chars:
            continue
        if not chapters and level and lone_top and ch.blocks and all(b.heading for b in ch.blocks):
            # "# Title" then "## One", "## Two": the lone top heading names the book, not a chapter.
            book.left_out.append(LeftOut(path.name, "title only (used as the book's name)", ch.source_chars))
            if not whole:
                book.title = ch.blocks[0].text
            continue
        if seg.anchor is None:  # text before the first cut
            ch.title = seg.first_heading() or (_pretty(path.stem) if whole else "Introduction")
        chapters.append(ch)
    if whole and len(chapters) == 1:
        chapters[0].title = first_heading or _pretty(path.stem)
    return chapters


def read_markdown(path: Path, heading_level: int | None = None) -> Book:
    book = Book(path, "Markdown", _pretty(path.stem))
    book.chapters = read_markdown_file(path, heading_level, book)
    if len(book.chapters) == 1 and book.chapters[0].blocks[0].heading:
        book.title = book.chapters[0].blocks[0].text
    return book
