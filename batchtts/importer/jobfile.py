"""Write an imported book: each chapter's text (UTF-8), the cover, the job file, and the report.

Every file is written atomically, the texts and cover first and the job file last, so a job file never
names a text that is not there. The job file is checked by the same parser `batchtts run` uses before
it replaces anything.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from batchtts.errors import EnvironmentProblem, InputError
from batchtts.importer.document import Book
from batchtts.importer.report import as_dict, markdown_report, table
from batchtts.jobs.targets import book_slug
from batchtts.state.atomic import atomic_path, atomic_write_bytes

# --format -> the chapters' suffix. "m4b": chapters in AAC (.m4a); `batchtts run` joins the chapters of
# a book into one <book>.m4b with a marker per chapter, whatever their format.
FORMATS = {"m4b": ".m4a", "m4a": ".m4a", "mp3": ".mp3", "opus": ".ogg", "ogg": ".ogg", "flac": ".flac", "wav": ".wav"}


@dataclass(frozen=True)
class JobOptions:
    voice: Path | None = None
    voice_text: str | None = None
    engine: str | None = None
    fmt: str = "m4b"
    text_dir: Path | None = None
    force: bool = False


@dataclass
class ImportReport:
    """What was (or, with dry_run, would be) written, and the accounting behind it."""

    book: Book
    job_file: Path
    text_dir: Path
    records: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    dry_run: bool = False

    def table(self) -> str:
        return table(self.book, self.records)

    def as_dict(self) -> dict:
        return as_dict(self.book, self.records, self.job_file)

    @property
    def report_json(self) -> Path:
        return self.job_file.with_suffix(".import.json")

    @property
    def report_md(self) -> Path:
        return self.job_file.with_suffix(".import.md")


def ascii_slug(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")


def file_slug(text: str, limit: int = 50) -> str:
    """A file name part that keeps any script ('02-山间茶馆'), lower-cased, without separators."""
    return re.sub(r"\W+", "-", text.lower()).strip("-")[:limit].strip("-") or "chapter"


def _rel(path: Path, folder: Path) -> str:
    """Relative to the job file's folder (the parser's rule) when they share more than the root, else absolute."""
    path, folder = path.resolve(), folder.resolve()
    if os.path.commonpath([path, folder]) == path.anchor:
        return path.as_posix()
    return Path(os.path.relpath(path, folder)).as_posix()


def _check(opts: JobOptions, job_file: Path) -> None:
    from batchtts.engines import engine_names

    if opts.fmt not in FORMATS:
        raise InputError(job_file, None, "format", f"'{opts.fmt}' is not one of {', '.join(FORMATS)}")
    if opts.engine is not None and opts.engine not in engine_names():
        raise InputError(
            job_file, None, "engine", f"unknown engine '{opts.engine}' (known: {', '.join(engine_names())})"
        )
    if opts.voice is not None:
        import soundfile as sf

        if not Path(opts.voice).is_file():
            raise InputError(opts.voice, None, None, "voice clip not found")
        try:
            sf.info(str(opts.voice))
        except Exception as exc:  # libsndfile says why in its own words
            raise InputError(opts.voice, None, None, f"cannot read the voice clip: {exc}") from None
    if job_file.is_dir():
        raise InputError(job_file, None, None, "is a folder; name the job file to write, e.g. jobs/book.jsonl")
    if job_file.exists() and not opts.force:
        raise InputError(job_file, None, None, "already exists; pass --force to replace it (it may hold your edits)")


def build_records(book: Book, job_file: Path, text_dir: Path, opts: JobOptions) -> tuple[list[dict], dict[Path, str]]:
    """The job records and the files (path -> text) they name."""
    base = job_file.parent
    width = max(2, len(str(len(book.chapters))))
    id_stem = ascii_slug(book.title, 40) or "chapter"
    folder = book_slug(book.title)[:60].strip("-.")
    files: dict[Path, str] = {}
    cover = None
    if book.cover:
        cover = text_dir / f"cover{book.cover[1]}"
    records = []
    for n, ch in enumerate(book.chapters, 1):
        nn = f"{n:0{width}d}"
        name = f"{nn}-{file_slug(ch.title)}"
        text_path = text_dir / f"{name}.txt"
        files[text_path] = ch.text
        rec: dict = {
            "id": f"{id_stem}-{nn}",
            "title": ch.title,
            "text_file": _rel(text_path, base),
            "output": f"{folder}/{name}{FORMATS[opts.fmt]}",
            "book": book.title,
        }
        if book.author:
            rec["author"] = book.author
        rec["track"] = n
        if cover is not None:
            rec["cover"] = _rel(cover, base)
        if opts.voice is not None:
            rec["voice"] = {"prompt_audio": _rel(Path(opts.voice), base), "prompt_text": opts.voice_text or ""}
        if opts.engine:
            rec["engine"] = opts.engine
        records.append(rec)
    return records, files


def default_text_dir(job_file: Path) -> Path:
    """A folder named after the job file, beside it (not `out/`: that is where `batchtts run` writes)."""
    return job_file.parent / (job_file.stem if job_file.stem != "out" else "out-text")


def write_import(book: Book, job_file: Path, opts: JobOptions, dry_run: bool = False) -> ImportReport:
    _check(opts, job_file)
    text_dir = Path(opts.text_dir) if opts.text_dir else default_text_dir(job_file)
    records, files = build_records(book, job_file, text_dir, opts)
    report = ImportReport(book, job_file, text_dir, records, dry_run=dry_run)
    if dry_run:
        return report
    try:
        _write(report, files)
    except OSError as exc:  # a full disk or a read-only folder: exit 4, and every file is whole or absent
        raise EnvironmentProblem(f"cannot write {exc.filename or job_file}: {exc.strerror or exc}") from None
    return report


def _write(report: ImportReport, files: dict[Path, str]) -> None:
    from batchtts.jobs.parse import load_jobs

    book, job_file = report.book, report.job_file
    for path, text in files.items():
        atomic_write_bytes(path, text.encode("utf-8"))
        report.written.append(path)
    if book.cover:
        cover = report.text_dir / f"cover{book.cover[1]}"
        atomic_write_bytes(cover, book.cover[0])
        report.written.append(cover)
    with atomic_path(job_file) as tmp:
        for attempt in (1, 2):
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.records)
            tmp.write_text(lines, encoding="utf-8")
            try:  # what `batchtts run` will parse, before it replaces anything
                load_jobs(tmp, job_file.parent / "out")
                break
            except InputError as exc:
                if exc.field == "cover" and attempt == 1:  # a cover ffmpeg cannot decode: the book goes without
                    book.notes.append(f"the cover cannot be used ({str(exc).split(': ', 2)[-1]}); no cover is set")
                    for rec in report.records:
                        rec.pop("cover", None)
                    continue
                exc.args = (str(exc).replace(str(tmp), str(job_file)),)  # name the job file, not its twin
                raise
    report.written.append(job_file)
    summary = json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(report.report_json, summary.encode("utf-8"))
    atomic_write_bytes(report.report_md, markdown_report(book, report.records).encode("utf-8"))
    report.written += [report.report_json, report.report_md]
