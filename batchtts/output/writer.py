"""Write chapter files (with timings) as soon as their chunks are done, then whole-book files."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from batchtts.jobs.targets import book_files, timing_files
from batchtts.jobs.types import Job
from batchtts.output.book import BookChapter, book_signature, write_book, write_playlist
from batchtts.output.chapter import stitch_chapter
from batchtts.output.encode import Tags
from batchtts.output.stitch import Piece, signature
from batchtts.output.subtitles import write_timings
from batchtts.planning.prepare import Prepared
from batchtts.state.events import EventLog
from batchtts.state.ledger import Ledger, Verdict
from batchtts.state.store import ChunkStore
from batchtts.state.workspace import Workspace

log = logging.getLogger("batchtts")


def verdict_row(v: Verdict) -> dict:
    """A chunk's verification as the chapter manifest and `status --json` give it."""
    asr = {"backend": v.backend, "metric": v.metric, "error": v.error, "transcript": v.transcript}
    return {"takes": v.takes, "flagged": v.flagged, "asr": asr}


def job_tags(job: Job) -> Tags:
    language = None if job.language == "auto" else job.language
    return Tags(job.title or job.id, job.author, job.book, job.track, language, job.cover)


@dataclass
class Writer:
    """Chapters are stitched, measured and encoded on one background thread while synthesis goes on (numpy,
    soxr and ffmpeg leave the interpreter lock free, so a second core is used); the ledger, the event log
    and the messages stay on the calling thread, which collects each finished chapter at its next call
    (`chapters_ready`, `finish`)."""

    prep: Prepared
    space: Workspace
    ledger: Ledger
    store: ChunkStore
    events: EventLog
    pending: set[str] = field(default_factory=set)  # job ids not yet written in this run
    written: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    chapters: dict[str, dict] = field(default_factory=dict)  # job id -> duration and loudness
    background: bool = True  # False: write each chapter on the calling thread

    def __post_init__(self) -> None:
        self.pending = {j.id for j in self.prep.jobs}
        self._cursor = {j.id: 0 for j in self.prep.jobs}  # chunks known done, from the start of each job
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[tuple[Future, Job, str, list[Path]]] = []

    def chapters_ready(self, done: set[str]) -> None:
        """Write every chapter whose chunks are all done, unless its file is already what it would be.
        Amortised O(chunks) over a run: each job's cursor only moves forward, since `done` only grows."""
        self._collect(wait=False)
        for job in self.prep.jobs:
            if job.id not in self.pending:
                continue
            chunks, i = self.prep.chunks[job.id], self._cursor[job.id]
            while i < len(chunks) and chunks[i].key in done:
                i += 1
            self._cursor[job.id] = i
            if i == len(chunks):
                self.pending.discard(job.id)
                self._chapter(job)

    def finish(self) -> None:
        """Wait for the chapters still being written and record them; raises what writing one raised."""
        try:
            self._collect(wait=True)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

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
        # ASR verdicts for the manifest, read here on the run's thread: the writer thread touches no ledger
        verdicts = {k: verdict_row(v) for k, v in self.ledger.verdicts(c.key for c in chunks).items()}
        if not self.background:
            self._record(job, sig, files, self._write(job, rate, lead, tags, pcm, verdicts))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchtts-writer")
        work = self._pool.submit(self._write, job, rate, lead, tags, pcm, verdicts)
        self._inflight.append((work, job, sig, files))

    def _write(
        self, job: Job, rate: int, lead: float | None, tags: Tags, pcm: Path, verdicts: dict[str, dict]
    ) -> tuple[dict, str]:
        """The chapter's audio files and timings (any thread: touches no ledger); returns its info and level.
        `verdicts`: chunk key -> its ASR verdict for the manifest."""
        chunks = self.prep.chunks[job.id]
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
        write_timings(job.output, chapter.cues, info, verdicts)
        level = (
            f"{chapter.loudness.integrated_lufs:.1f} LUFS, true peak {chapter.loudness.true_peak_db:.1f} dBTP"
            if chapter.loudness
            else "loudness left as synthesised"
        )
        return info, f"{chapter.duration:.1f} s, {level}"

    def _collect(self, wait: bool) -> None:
        """Record the chapters the background thread has finished, in the order they were started."""
        while self._inflight and (wait or self._inflight[0][0].done()):
            future, job, sig, files = self._inflight.pop(0)
            self._record(job, sig, files, future.result())

    def _record(self, job: Job, sig: str, files: list[Path], result: tuple[dict, str]) -> None:
        info, level = result
        self.ledger.record_files(files)
        self.ledger.mark_stitched(job.id, sig)
        self.written.append(str(job.output))
        self.chapters[job.id] = info
        self.events.emit("job", state="written", **info)
        log.info("wrote %s (%s)", job.output, level)

    def books(self) -> None:
        """One m4b and one playlist per `book`, once every chapter of it has been written."""
        self.finish()
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
