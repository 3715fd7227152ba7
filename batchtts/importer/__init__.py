"""`batchtts import`: an EPUB, a Markdown or text file, or a folder of them, to a job file.

One module per source kind (epub, markdown, text) returns a `Book` of chapters with their character
accounting; `jobfile` writes the chapters' text, the cover, the job file and the report.
"""

from __future__ import annotations

from pathlib import Path

from batchtts.errors import InputError
from batchtts.importer.document import Block, Book, Chapter, LeftOut, nonspace
from batchtts.importer.jobfile import ImportReport, JobOptions, write_import
from batchtts.importer.plaintext import _paragraphs, _pretty, is_heading, read_text, read_utf8

__all__ = ["ImportReport", "JobOptions", "import_source", "read_source"]

TEXT_SUFFIXES = (".txt", ".text")


def read_source(source: Path, *, heading_level: int | None = None, include_matter: bool = False) -> Book:
    """Chapters of SOURCE (a file or a course folder), in order, with what was left out and why."""
    from batchtts.importer.epub import read_epub
    from batchtts.importer.markdown import MARKDOWN_SUFFIXES, read_markdown

    source = Path(source)
    if source.is_dir():
        book = _guarded(_read_folder, source, heading_level)
    elif not source.is_file():
        raise InputError(source, None, None, "not found")
    elif source.suffix.lower() == ".epub":
        book = _guarded(read_epub, source, include_matter)
    elif source.suffix.lower() in MARKDOWN_SUFFIXES:
        book = _guarded(read_markdown, source, heading_level)
    elif source.suffix.lower() in TEXT_SUFFIXES:
        book = read_text(source, include_matter)
    else:
        raise InputError(source, None, None, "unknown kind of source (use .epub, .md, .txt or a folder of .md/.txt)")
    _finish(book)
    return book


def _guarded(read, source: Path, *args) -> Book:
    try:
        return read(source, *args)
    except RecursionError:
        raise InputError(source, None, None, "markup nested too deeply to read") from None


def _read_folder(folder: Path, heading_level: int | None) -> Book:
    from natsort import natsorted

    from batchtts.importer.markdown import MARKDOWN_SUFFIXES, read_markdown_file

    files = natsorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (*MARKDOWN_SUFFIXES, *TEXT_SUFFIXES)),
        key=lambda p: p.name,
    )
    if not files:
        raise InputError(folder, None, None, "holds no .md or .txt files")
    kinds = {"Markdown" if p.suffix.lower() in MARKDOWN_SUFFIXES else "text" for p in files}
    book = Book(folder, " and ".join(sorted(kinds)) + " folder", _pretty(folder.name))
    for path in files:
        if path.suffix.lower() in MARKDOWN_SUFFIXES:
            book.chapters += read_markdown_file(path, heading_level, book, whole=True)
        else:
            book.chapters.append(_text_lesson(path))
    return book


def _text_lesson(path: Path) -> Chapter:
    """A text file of a course folder: one chapter, titled by its first line if that is a heading."""
    paras = _paragraphs(read_utf8(path))
    if not paras:
        raise InputError(path, None, None, "no text to speak (empty file)")
    chars = sum(nonspace(line) for p in paras for line in p)
    first = paras[0]
    title = first[0] if len(first) == 1 and (is_heading(first[0]) or len(first[0]) <= 60) else _pretty(path.stem)
    blocks = [Block("\n".join(p), heading=(i == 0 and title == p[0])) for i, p in enumerate(paras)]
    return Chapter(title, blocks, [path.name], chars)


def _finish(book: Book) -> None:
    """Chapters with nothing to speak are listed as left out; every other one opens with its title."""
    from batchtts.importer.semantics import speakable_words as speakable

    kept = []
    for n, ch in enumerate(book.chapters, 1):
        if not any(speakable(b.text) for b in ch.blocks):
            if ch.source_chars:
                why = ", ".join(ch.dropped) or "no speakable text"
                book.left_out.append(LeftOut(", ".join(ch.sources), f"nothing left to speak: {why}", ch.source_chars))
            else:
                book.notes.append(f"'{ch.title or n}' ({', '.join(ch.sources)}) holds no text; no job made")
            continue
        if not ch.title:
            ch.title = ch.blocks[0].text[:80] if ch.blocks[0].heading else f"Chapter {n}"
        ch.speak_title_first()
        kept.append(ch)
    book.chapters = kept


def import_source(
    source: Path,
    jobs_out: Path,
    *,
    voice: Path | None = None,
    voice_text: str | None = None,
    engine: str | None = None,
    fmt: str = "m4b",
    text_dir: Path | None = None,
    heading_level: int | None = None,
    dry_run: bool = False,
    include_matter: bool = False,
    force: bool = False,
    book_title: str | None = None,
    author: str | None = None,
) -> ImportReport:
    """Read SOURCE and write `jobs_out` (one job per chapter), the chapters' text, the cover and a report.

    Nothing is written with `dry_run`. An existing job file is replaced only with `force` (it may hold
    the user's edits: voice, pronunciations).
    """
    opts = JobOptions(voice, voice_text, engine, fmt, text_dir, force)
    book = read_source(source, heading_level=heading_level, include_matter=include_matter)
    if book_title:
        book.title = book_title
    if author:
        book.author = author
    if not book.chapters:
        raise InputError(
            source,
            None,
            None,
            f"no chapter with text to speak ({len(book.left_out)} parts left out as front or back "
            "matter; --include-matter keeps them)",
        )
    return write_import(book, Path(jobs_out), opts, dry_run=dry_run)
