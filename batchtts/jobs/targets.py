"""Which files a run writes: the one answer used both to check a job file and to write its outputs.

Before anything is synthesised, every file a run will write (each chapter with its .srt/.vtt/.json
timings, each book's .m4b and .m3u) must be distinct, outside the state folder, not an existing
folder, short enough for the file system, and none may be an input (the job file, text files, voice
clips, covers): a clash is a one-line InputError naming both, not a lost file after hours of work.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchtts.errors import InputError

if TYPE_CHECKING:  # only names: this module sits below every stage, so the writers can use it too
    from batchtts.jobs.types import Job, Source

TIMING_SUFFIXES = (".srt", ".vtt", ".json")
# Room for the temporary name an atomic write uses beside its destination (a dot, a random part, ".tmp").
_TEMP_ROOM = 40
_PATH_MAX = 4096  # Linux's limit on a whole path; longer ones fail with ENAMETOOLONG
_NAME_MAX = 255  # and on one name, where the file system cannot be asked


def book_slug(book: str) -> str:
    slug = re.sub(r"[^\w.-]+", "-", book, flags=re.UNICODE).strip("-.")
    return slug or "book"


def timing_files(output: Path) -> list[Path]:
    """Subtitles and the timings manifest written beside a chapter."""
    return [output.with_suffix(s) for s in TIMING_SUFFIXES]


def book_files(out_dir: Path, book: str) -> tuple[Path, Path]:
    """A book's .m4b and its .m3u playlist."""
    m4b = out_dir / f"{book_slug(book)}.m4b"
    return m4b, m4b.with_suffix(".m3u")


@dataclass(frozen=True)
class Target:
    path: Path
    src: Source
    field: str
    what: str  # how the error names it


def run_targets(jobs: list[Job], out_dir: Path) -> list[Target]:
    """Every file a run of `jobs` writes, in job order, each book's after its first chapter."""
    targets: list[Target] = []
    books: set[str] = set()
    for job in jobs:
        where = f"line {job.source.line}"
        targets.append(Target(job.output, job.source, "output", f"the output on {where}"))
        targets += [
            Target(p, job.source, "output", f"the {p.suffix} timings of the output on {where}")
            for p in timing_files(job.output)
        ]
        if job.book is not None and job.book not in books:
            books.add(job.book)
            targets += [
                Target(p, job.source, "book", f"the {p.suffix} of book '{job.book}' ({where})")
                for p in book_files(out_dir, job.book)
            ]
    return targets


def _inputs(job_file: Path, jobs: list[Job]) -> dict[Path, str]:
    found = {job_file.resolve(): "the job file"}
    for job in jobs:
        where = f"line {job.source.line}"
        for path, field in (
            (job.text_file, "text_file"),
            (job.voice.prompt_audio, "voice.prompt_audio"),
            (job.cover, "cover"),
        ):
            if path is not None:
                found.setdefault(path.resolve(), f"the {field} of {where}")
    return found


@functools.lru_cache(maxsize=1024)
def _folder(folder: Path) -> tuple[str | None, int]:
    """What a file in `folder` runs into, asked once per folder (thousands of chapters share a few): a
    problem with the folder itself, else None, and the file system's NAME_MAX there."""
    if len(os.fsencode(str(folder))) + _TEMP_ROOM + 2 > _PATH_MAX:
        return f"the path {str(folder)[:60]}... is too long for the file system", _NAME_MAX
    if any(len(os.fsencode(part)) > _NAME_MAX for part in folder.parts):
        return f"a folder name in {str(folder)[:50]}... is too long for the file system", _NAME_MAX
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"needs the folder {folder}, but {existing} is a file", _NAME_MAX
    try:
        return None, os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        return None, _NAME_MAX


def check_targets(job_file: Path, jobs: list[Job], out_dir: Path, state: Path) -> None:
    """Raise InputError at the first file a run would write that it must not (`state`: the state folder)."""
    for what, path in (("job file", job_file.resolve()), ("output folder", out_dir.resolve())):
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 cannot be recorded in the ledger or in tags
            shown = os.fsencode(path).decode("utf-8", "replace")
            raise InputError(shown, None, None, f"the {what}'s path is not UTF-8; rename it") from None
    state_dir = str(state.resolve())
    inputs = {str(p): what for p, what in _inputs(job_file, jobs).items()}
    seen: dict[str, Target] = {}
    _folder.cache_clear()  # folders may have appeared since the last check in this process
    for t in run_targets(jobs, out_dir.resolve()):
        path = str(t.path)  # already resolved: outputs when parsed, books under the resolved output folder
        key = os.path.normcase(path)
        if key in seen:
            first = seen[key]
            if first.what.startswith("the output on") and t.what.startswith("the output on"):
                raise t.src.error(t.field, f"same output as {first.what[len('the output on ') :]}")
            raise t.src.error(t.field, f"{t.what} is {t.path.name}, which is also {first.what}; rename one")
        seen[key] = t
        if path == state_dir or path.startswith(state_dir + os.sep):
            raise t.src.error(t.field, f"{t.what} ({path}) is inside batchtts's state folder {state_dir}")
        if path in inputs:
            raise t.src.error(t.field, f"{t.what} would overwrite {inputs[path]}, {path}")
        problem, name_max = _folder(t.path.parent)
        if problem:
            raise t.src.error(t.field, f"{t.what} ({t.path.name}): {problem}")
        if len(os.fsencode(t.path.name)) + _TEMP_ROOM > name_max:
            raise t.src.error(t.field, f"{t.what}: the name {t.path.name[:40]}... is too long for the file system")
        if os.path.isdir(path):
            raise t.src.error(t.field, f"{t.what} ({path}) is a folder")
