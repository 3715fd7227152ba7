"""Plain text to chapters, cut at chapter headings ("Chapter 12", "Letter 4", "BOOK I. CHAPTER 3", "第十二章",
"第12回", "楔子", "PREFACE."; see textrules).

A Project Gutenberg header and licence are left out in every form PG has used (and give the title and author).
Text before the first heading is book text: what is recognised as matter (a title page, a contents list, a
dedication) is left out and reported, the rest is a chapter of its own. A body line that starts like a heading
but is indented unlike the book's headings, or holds Chinese sentence punctuation, is body text; a heading the
source repeats is merged. Plain-text markup is dropped and counted (textrules.unmark); a line of `* * *` is a
scene break (the `[scene]` marker). A long text without any heading is one chapter, with a note that says so.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from batchtts.errors import InputError
from batchtts.importer.document import Block, Book, Chapter, LeftOut, clean, join_heading, nonspace
from batchtts.importer.semantics import is_scene_break
from batchtts.importer.textrules import (
    NOTE_PARAGRAPH,
    heading_key,
    heading_of,
    is_name_line,
    is_wrapped_sentence,
    matter_heading,
    unmark,
)
from batchtts.jobs.markup import LINE_MARKER, SCENE_MARKER, speakable

# Project Gutenberg boundaries, indented or not: "*** START OF THE PROJECT GUTENBERG EBOOK X ***", the old
# "*END*THE SMALL PRINT! ..." that closed the header's licence, "*** END OF THIS PROJECT GUTENBERG EBOOK X ***",
# "End of the Project Gutenberg EBook of X", "End of Project Gutenberg's X".
_PG_START = re.compile(
    r"^[ \t]*(?:\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG|\*+\s*END\s*\*+\s*THE SMALL PRINT).*$",
    re.IGNORECASE | re.MULTILINE,
)
_PG_END = re.compile(
    r"^[ \t]*(?:\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|End of (?:the |this )?Project Gutenberg).*$",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD_RE = re.compile(r"^(Title|Author):\s*(.+)$", re.MULTILINE)
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")
_LONG_WITHOUT_HEADINGS = 20_000  # characters: a book this long with no heading is worth a note
_TITLE_PAGE_MAX = 400  # characters of short lines at the start that make a title page
_VERSE_LINE_MAX = 60  # characters: longer indented lines are a quoted letter or a block quote, wrapped prose


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
    return heading_of(line) is not None


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _raw_paragraphs(text: str) -> list[list[str]]:
    """Blank-line separated paragraphs as lists of lines, indentation kept; a text with no blank lines (common
    in Chinese novels) has one paragraph per line."""
    parts = _BLANK_LINE_RE.split(text) if _BLANK_LINE_RE.search(text) else text.split("\n")
    return [[ln.rstrip() for ln in p.split("\n") if ln.strip()] for p in parts if p.strip()]


def _paragraphs(text: str) -> list[list[str]]:
    return [[ln.strip() for ln in p] for p in _raw_paragraphs(text)]


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _gutenberg(text: str, book: Book, name: str) -> str:
    """TEXT without PG's header and licence (each left out and reported); sets the title and author."""
    start = next((m for m in _PG_START.finditer(text) if m.start() < len(text) // 2), None)
    if start:
        fields = dict(_FIELD_RE.findall(text[: start.start()]))
        book.title = " ".join(fields.get("Title", book.title).split())
        book.author = " ".join(fields["Author"].split()) if "Author" in fields else None
        later = [m for m in _PG_START.finditer(text, start.end()) if m.start() < len(text) // 2]
        start = later[-1] if later else start  # an old header has both: the licence ends at the last
        where = f"{name}: lines 1-{_line_of(text, start.end())}"
        book.left_out.append(LeftOut(where, "Project Gutenberg header", nonspace(text[: start.end()])))
    begin = start.end() if start else 0
    end = _PG_END.search(text, begin)
    if end:
        where = f"{name}: line {_line_of(text, end.start())} on"
        book.left_out.append(LeftOut(where, "Project Gutenberg licence", nonspace(text[end.start() :])))
    return text[begin : end.start() if end else len(text)]


def read_text(path: Path, include_matter: bool = False) -> Book:
    text = read_utf8(path)
    book = Book(path, "text", _pretty(path.stem))
    if not speakable(text):
        raise InputError(path, None, None, "no text to speak (empty or symbols only)")
    text = _gutenberg(text, book, path.name)
    book.chapters = split_chapters(text, path.name, book, include_matter)
    return book


class _Cutter:
    """Paragraphs to chapters, with the accounting of every character."""

    def __init__(self, name: str, book: Book, include_matter: bool):
        self.name, self.book, self.include_matter = name, book, include_matter
        self.chapters: list[Chapter] = []
        self.preamble = Chapter("", sources=[name])
        self.current = self.preamble
        self.matter: str | None = None  # the kind of matter being skipped (after a "CONTENTS" heading)
        self.in_illustration = False

    def leave_out(self, what: str, reason: str, chars: int) -> None:
        self.book.left_out.append(LeftOut(f"{self.name}: {what[:40]}", reason, chars))

    def body(self, lines: list[str], chars: int, verse: bool = False) -> None:
        ch = self.current
        ch.source_chars += chars
        if self.matter and not self.include_matter:
            self.leave_out(lines[0], self.matter, chars)
            ch.source_chars -= chars
            return
        if len(lines) == 1 and is_scene_break(lines[0]):
            ch.dropped["scene break"] += chars
            if ch.blocks and not ch.blocks[-1].heading and ch.blocks[-1].text != SCENE_MARKER:
                ch.blocks.append(Block(SCENE_MARKER))
                ch.added_chars += nonspace(SCENE_MARKER)
            return
        if NOTE_PARAGRAPH.match(lines[0]):
            ch.dropped["note"] += chars
            return
        text, dropped = unmark("\n".join(lines))
        ch.dropped.update(dropped)
        if not speakable(text):
            if nonspace(text):
                ch.dropped["symbols only"] += nonspace(text)
            return
        out = [" ".join(ln.split()) for ln in text.split("\n") if ln.strip()]
        if verse and len(out) > 1:  # a stanza: each line but the last ends with the line marker
            ch.added_chars += nonspace(LINE_MARKER) * (len(out) - 1)
            ch.blocks.append(Block(f" {LINE_MARKER}\n".join(out)))
        else:
            ch.blocks.append(Block("\n".join(out)))

    def heading(self, title: str, lines: list[str], chars: int) -> None:
        prev = self.chapters[-1] if self.chapters else None
        self.matter = None
        if prev is not None and len(prev.blocks) == 1 and heading_key(prev.title) == heading_key(title):
            prev.source_chars += chars  # the source repeats its heading: one chapter
            prev.dropped["repeated heading"] += chars
            self.current = prev
            return
        text, added = join_heading(lines)
        text, dropped = unmark(text)
        ch = Chapter(title, [Block(text, heading=True)], [self.name], chars, dropped, added_chars=added)
        self.chapters.append(ch)
        self.current = ch


def split_chapters(text: str, name: str, book: Book, include_matter: bool) -> list[Chapter]:
    """Cut `text` at heading paragraphs; a paragraph made only of headings is a contents list."""
    raw = _raw_paragraphs(text)
    heading_indent, body_indent = _indents(raw)
    cut = _Cutter(name, book, include_matter)
    i = 0
    while i < len(raw):
        para = [ln.strip() for ln in raw[i]]
        chars = sum(nonspace(line) for line in para)
        i += 1
        if cut.in_illustration or (para[0].startswith("[Illustration") and "]" not in "".join(para)):
            cut.in_illustration = "]" not in "".join(para)
            title = heading_of(para[0]) if len(para) == 1 else None
            if title is None:
                cut.current.source_chars += chars
                cut.current.dropped["illustration"] += chars
                continue
        else:
            indent = _indent(raw[i - 1][0])
            title = heading_of(para[0]) if indent == heading_indent or indent != body_indent else None
        if len(para) > 1 and all(heading_of(line) or matter_heading(line) for line in para):
            cut.leave_out(para[0] + "...", "contents list", chars)
            continue
        if kind := matter_heading(para[0]) if len(para) == 1 else None:
            cut.matter = kind
            cut.leave_out(para[0], kind, chars)
            continue
        if title is not None and len(para) > 1 and is_wrapped_sentence(para[0]):
            title = None  # "Chapter 3 of the report says that the ..." wrapped onto the next line: prose
        if title is None:
            cut.body(para, chars, _is_stanza(raw[i - 1], body_indent))
            continue
        take = 1
        while take < len(para) and para[0].isupper() and para[take].isupper() and not heading_of(para[take]):
            take += 1  # an all-capitals heading wrapped onto more lines: one title
        if take > 1:
            heading_lines = [" ".join([title, *para[1:take]])]
        else:
            if len(para) == 2 and is_name_line(para[1], title):
                take = 2
            elif len(para) == 1 and i < len(raw) and len(raw[i]) == 1 and is_name_line(raw[i][0], title):
                para, take, i = [para[0], raw[i][0].strip()], 2, i + 1  # the chapter's name on the next line
                chars += nonspace(para[1])
            heading_lines = [title, *para[1:take]]
        head_chars = sum(nonspace(line) for line in para[:take])
        cut.heading(join_heading(heading_lines)[0], heading_lines, head_chars)
        # Characters of the decoration around the heading ("Chapter I.]") are not read.
        decoration = head_chars - sum(nonspace(line) for line in heading_lines)
        if decoration:
            cut.current.dropped["heading decoration"] += decoration
        if para[take:]:
            cut.body(para[take:], chars - head_chars)
    return _finish(cut, name, book, len(text))


def _is_stanza(lines: list[str], body_indent: int) -> bool:
    """Lines of verse: two or more short lines (60 characters at most), all indented deeper than the prose."""
    return (
        len(lines) > 1
        and all(_indent(ln) > max(body_indent, 0) for ln in lines)
        and max(len(ln.strip()) for ln in lines) <= _VERSE_LINE_MAX
    )


def _indents(raw: list[list[str]]) -> tuple[int, int]:
    """The most common indentation of heading lines and of body paragraphs: a line that starts like a heading
    but is indented like the body, unlike the headings, is body text."""
    heads = Counter(_indent(p[0]) for p in raw if len(p) <= 2 and heading_of(p[0]))
    body = Counter(_indent(p[0]) for p in raw if not heading_of(p[0]))
    top = heads.most_common(1)[0][0] if heads else -1
    return top, body.most_common(1)[0][0] if body else -1


def _finish(cut: _Cutter, name: str, book: Book, length: int) -> list[Chapter]:
    chapters = cut.chapters
    for ch in [*chapters, cut.preamble]:  # a scene break at a chapter's end is nothing to pause for
        while ch.blocks and ch.blocks[-1].text == SCENE_MARKER:
            ch.blocks.pop()
            ch.added_chars -= nonspace(SCENE_MARKER)
    for ch in [c for c in chapters if len(c.blocks) == 1]:  # a heading with nothing under it
        book.left_out.append(
            LeftOut(f"{name}: {ch.title[:40]}", "heading without text (contents?)", ch.source_chars - ch.dropped_chars)
        )
        for reason, n in ch.dropped.items():
            book.left_out.append(LeftOut(f"{name}: {ch.title[:40]}", reason, n))
        chapters.remove(ch)
    pre = cut.preamble
    if pre.blocks or pre.source_chars:
        if chapters:  # with no heading at all, short opening lines are the text, not a title page
            _preamble(pre, name, book)
        if pre.blocks:
            if cut.include_matter or chapters:
                chapters.insert(0, pre)
            else:
                chapters = [pre]
    if not cut.chapters and length > _LONG_WITHOUT_HEADINGS:
        book.notes.append(
            f"{name}: no chapter heading found in {length:,} characters; the whole text is one chapter "
            "(split it at headings like 'Chapter 1' or '第一章', or import Markdown with # headings)"
        )
    if chapters and not chapters[0].title:
        chapters[0].title = book.title
    return chapters


def _preamble(pre: Chapter, name: str, book: Book) -> None:
    """Text before the first heading: a title page of short lines at the start is left out; the rest is a
    chapter titled by its own first line when that is short (else the book's title)."""
    short, n = 0, 0
    for block in pre.blocks:
        lines = block.text.split("\n")
        if len(lines) > 3 or any(len(ln) > 80 for ln in lines) or short + nonspace(block.text) > _TITLE_PAGE_MAX:
            break
        short += nonspace(block.text)
        n += 1
    if n:
        gone = pre.blocks[:n]
        chars = sum(nonspace(b.text) for b in gone)
        book.left_out.append(LeftOut(f"{name}: {gone[0].text[:30]}...", "title page", chars))
        _book_fields(book, [b.text for b in gone])
        pre.blocks = pre.blocks[n:]
        pre.source_chars -= chars
    if pre.blocks:
        first = pre.blocks[0].text
        if "\n" not in first and len(first) <= 60 and not first.endswith((".", "。", "．", ",")):
            pre.title = first
            pre.blocks[0].heading = True
    elif pre.source_chars:
        book.left_out.append(LeftOut(f"{name}: before the first heading", "; ".join(pre.dropped), pre.source_chars))


def _book_fields(book: Book, lines: list[str]) -> None:
    """A title page's '《红楼梦》曹雪芹' gives the book's title and author when nothing else did."""
    if book.author:
        return
    m = re.fullmatch(r"\s*《([^》]+)》\s*(\S{1,12})?\s*", " ".join(lines))
    if m:
        book.title, book.author = m.group(1), m.group(2) or None


def _pretty(stem: str) -> str:
    """'02_intro-to-sql' -> 'intro to sql': a file name as a title."""
    words = re.sub(r"^\d+[\s._-]*", "", stem).replace("_", " ").replace("-", " ").strip()
    return words or stem
