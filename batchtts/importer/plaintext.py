"""Plain text to chapters, cut at chapter headings ("Chapter 12", "CHAPTER XII", "第十二章", "第12回").

A Project Gutenberg header and licence are left out (and give the title and author); text before the
first heading (title page, contents) is left out by default; a text without headings is one chapter.
"""

from __future__ import annotations

import re
from pathlib import Path

from batchtts.errors import InputError
from batchtts.importer.document import Block, Book, Chapter, LeftOut, clean, join_heading, nonspace
from batchtts.jobs.markup import speakable

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred"
)
_HEADING_RE = re.compile(
    rf"""\s*(?:
        chapter\s+(?:\d+|[ivxlcdm]+\b|(?:{_NUMBER_WORDS})(?:[\s-]+(?:{_NUMBER_WORDS}))*\b)[^\n]{{0,80}}
      | 第\s*[0-9０-９零〇一二三四五六七八九十百千两]+\s*[章回节卷][^\n]{{0,40}}
      | (?:prologue|epilogue)\b[^\n]{{0,60}}
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_FIELD_RE = re.compile(r"^(Title|Author):\s*(.+)$", re.MULTILINE)
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")


def read_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is named by line and offset (exit 2)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            path, line, None, f"not UTF-8 (bad byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    return clean(text.replace("\r\n", "\n").replace("\r", "\n"))


def is_heading(line: str) -> bool:
    return bool(_HEADING_RE.fullmatch(line))


def _paragraphs(text: str) -> list[list[str]]:
    """Blank-line separated paragraphs as lists of lines; a text with no blank lines (common in Chinese
    novels) has one paragraph per line."""
    if _BLANK_LINE_RE.search(text):
        parts = _BLANK_LINE_RE.split(text)
        return [[ln.strip() for ln in p.split("\n") if ln.strip()] for p in parts if p.strip()]
    return [[ln.strip()] for ln in text.split("\n") if ln.strip()]


def read_text(path: Path, include_matter: bool = False) -> Book:
    text = read_utf8(path)
    book = Book(path, "text", _pretty(path.stem))
    if not speakable(text):
        raise InputError(path, None, None, "no text to speak (empty or symbols only)")
    if m := _GUTENBERG_START.search(text):
        fields = dict(_FIELD_RE.findall(text[: m.start()]))
        book.title = " ".join(fields.get("Title", book.title).split())
        book.author = " ".join(fields["Author"].split()) if "Author" in fields else None
        book.left_out.append(
            LeftOut(
                f"{path.name}: lines 1-{text.count(chr(10), 0, m.end()) + 1}",
                "Project Gutenberg header",
                nonspace(text[: m.end()]),
            )
        )
        start = m.end()
        end_m = _GUTENBERG_END.search(text, start)
        if end_m:
            book.left_out.append(
                LeftOut(
                    f"{path.name}: line {text.count(chr(10), 0, end_m.start()) + 1} on",
                    "Project Gutenberg licence",
                    nonspace(text[end_m.start() :]),
                )
            )
        text = text[start : end_m.start() if end_m else len(text)]
    book.chapters = split_chapters(text, path.name, book, include_matter)
    return book


def split_chapters(text: str, name: str, book: Book, include_matter: bool) -> list[Chapter]:
    """Cut `text` at heading paragraphs; a paragraph made only of headings is a contents list."""
    chapters: list[Chapter] = []
    preamble = Chapter(book.title, sources=[name])
    current = preamble
    for para in _paragraphs(text):
        chars = sum(nonspace(line) for line in para)
        if len(para) > 1 and all(is_heading(line) for line in para):
            book.left_out.append(LeftOut(f"{name}: {para[0][:40]}...", "contents list", chars))
            continue
        if is_heading(para[0]):
            # "CHAPTER I." then a short title line form one heading; longer text after it is the body.
            take = 2 if len(para) > 1 and len(para[1]) <= 80 and not is_heading(para[1]) and len(para) == 2 else 1
            heading, added = join_heading(para[:take])
            current = Chapter(heading, [Block(heading, heading=True)], [name], chars, added_chars=added)
            chapters.append(current)
            if para[take:]:
                current.blocks.append(Block("\n".join(para[take:])))
            continue
        current.blocks.append(Block("\n".join(para)))
        current.source_chars += chars
    if not chapters:
        return [preamble]
    # A heading with no text under it is a contents line, not a chapter.
    for ch in [c for c in chapters if len(c.blocks) == 1]:
        book.left_out.append(LeftOut(f"{name}: {ch.title[:40]}", "heading without text (contents?)", ch.source_chars))
        chapters.remove(ch)
    if preamble.blocks:
        if include_matter:
            chapters.insert(0, preamble)
        else:
            book.left_out.append(
                LeftOut(
                    f"{name}: before '{chapters[0].title[:30]}'" if chapters else name,
                    "text before the first chapter heading",
                    preamble.source_chars,
                )
            )
    return chapters


def _pretty(stem: str) -> str:
    """'02_intro-to-sql' -> 'intro to sql': a file name as a title."""
    words = re.sub(r"^\d+[\s._-]*", "", stem).replace("_", " ").replace("-", " ").strip()
    return words or stem
