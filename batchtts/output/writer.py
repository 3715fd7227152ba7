"""Write chapter files (with timings) as soon as their chunks are done, then whole-book files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from batchtts.jobs.targets import book_files, timing_files
from batchtts.jobs.types import Job
from batchtts.output.book import BookChapter, book_signature, write_book, write_playlist
from batchtts.output.chapter import stitch_chapter
from batchtts.output.encode import Tags
from batchtts.output.stitch import Piece, signature
from batchtts.output.subtitles import write_timings
from batchtts.planning.prepare import Prepared
from batchtts.state.events import EventLog
from batchtts.state.ledger import Ledger
from batchtts.state.store import ChunkStore
from batchtts.state.workspace import Workspace

log = logging.getLogger("batchtts")


def job_tags(job: Job) -> Tags:
    language = None if job.language == "auto" else job.language
    return Tags(job.title or job.id, job.author, job.book, job.track, language, job.cover)


@dataclass
class Writer:
    prep: Prepared
    space: Workspace
    ledger: Ledger
    store: ChunkStore
    events: EventLog
    pending: set[str] = field(default_factory=set)  # job ids not yet written in this run
    written: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    chapters: dict[str, dict] = field(default_factory=dict)  # job id -> duration and loudness

    def __post_init__(self) -> None:
        self.pending = {j.id for j in self.prep.jobs}

    def chapters_ready(self, done: set[str]) -> None:
        """Write every chapter whose chunks are all done, unless its file is already what it would be."""
        for job in self.prep.jobs:
            if job.id in self.pending and all(c.key in done for c in self.prep.chunks[job.id]):
                self.pending.discard(job.id)
                self._chapter(job)

    def _chapter(self, job: Job) -> None:
        chunks = self.prep.chunks[job.id]
        rate = job.sample_rate or self.store.sample_rate(chunks[0].key)
        lead = chunks[0].pause_before
        tags = job_tags(job)
        sig = signature(
            [c.key for c in chunks],
            [(c.brk, c.pause) for c in chunks],
            job.pauses,
            lead,
            job.loudness,
            rate,
            job.output.suffix,
            tags,
        )
        pcm = self.space.chapter_pcm(job.id)
        files = [job.output, pcm, *timing_files(job.output)]
        if self.ledger.stitched_signature(job.id) == sig and self.ledger.files_intact(files):
            self.up_to_date.append(str(job.output))
            self.events.emit("job", job=job.id, output=str(job.output), state="up_to_date")
            return
        # Chunk audio is read only for a chapter that must be written (an up-to-date book costs no decoding),
        # one chunk at a time as the stitch consumes it.
        pieces = (Piece(*self.store.read(c.key), c.brk, c.source_text, c.key, c.pause) for c in chunks)
        chapter = stitch_chapter(pieces, rate, job.pauses, job.loudness, lead, pcm, job.output, tags)
        log.debug("%s: %.1f MB of temporary disk", job.id, chapter.scratch_bytes / 1e6)
        info = {
            "job": job.id,
            "title": job.title,
            "output": job.output.name,
            "duration": round(chapter.duration, 4),
            "loudness_lufs": chapter.loudness and round(chapter.loudness.integrated_lufs, 2),
            "true_peak_db": chapter.loudness and round(chapter.loudness.true_peak_db, 2),
        }
        write_timings(job.output, chapter.cues, info)
        self.ledger.record_files(files)
        self.ledger.mark_stitched(job.id, sig)
        self.written.append(str(job.output))
        self.chapters[job.id] = info
        self.events.emit("job", state="written", **info)
        level = (
            f"{chapter.loudness.integrated_lufs:.1f} LUFS, true peak {chapter.loudness.true_peak_db:.1f} dBTP"
            if chapter.loudness
            else "loudness left as synthesised"
        )
        log.info("wrote %s (%.1f s, %s)", job.output, chapter.duration, level)

    def books(self) -> None:
        """One m4b and one playlist per `book`, once every chapter of it has been written."""
        books: dict[str, list[Job]] = {}
        for job in self.prep.jobs:
            if job.book:
                books.setdefault(job.book, []).append(job)
        for book, jobs in books.items():
            jobs = sorted(jobs, key=lambda j: (j.track is None, j.track or 0))
            sigs = [self.ledger.stitched_signature(j.id) for j in jobs]
            if any(
                sig is None or not j.output.is_file() or not self.space.chapter_pcm(j.id).is_file()
                for sig, j in zip(sigs, jobs, strict=True)
            ):
                log.info("book '%s' waits for all its chapters", book)
                continue
            chapters = [
                BookChapter(j.title or j.id, j.output, self.space.chapter_pcm(j.id), sig)
                for j, sig in zip(jobs, sigs, strict=True)
            ]
            cover = next((j.cover for j in jobs if j.cover), None)
            tags = Tags(book, jobs[0].author, book, None, None, cover)
            m4b, m3u = book_files(self.space.out_dir, book)
            sig = book_signature(chapters, tags)
            if self.ledger.book_signature(book) == sig and self.ledger.files_intact([m4b, m3u]):
                continue
            marks = write_book(m4b, chapters, tags)
            write_playlist(m3u, chapters, marks)
            self.ledger.record_files([m4b, m3u])
            self.ledger.mark_book(book, sig)
            self.written.append(str(m4b))
            self.events.emit("book", book=book, output=str(m4b), chapters=len(marks))
            log.info("wrote %s: %d chapters, %.1f min", m4b, len(marks), marks[-1].end / 60)
