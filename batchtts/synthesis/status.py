"""What the output folder holds per job (status), the review page and hand retakes: the library's read side
and its one edit that is not a run. Re-exported by batchtts.api."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from batchtts.errors import EnvironmentProblem, InputError
from batchtts.output.writer import verdict_row
from batchtts.planning.prepare import prepare
from batchtts.state.workspace import Workspace
from batchtts.text.chunks import Chunk

PathLike = str | Path


def _path(value: PathLike | None) -> Path | None:
    return Path(value) if value is not None else None


@dataclass(frozen=True)
class ChunkFailure:
    index: int
    key: str
    error: str
    text: str


@dataclass(frozen=True)
class ChunkState:
    """One chunk as `status --json` reports it. `text`: what the engine spoke; `source`: the book's text."""

    index: int
    key: str
    text: str
    source: str
    state: str  # "done" | "failed" | "pending"
    attempts: int  # synthesis attempts recorded (runs that ended with it done or failed)
    takes: int | None = None  # takes in the run that kept it (verification); None: not verified
    flagged: bool = False
    asr: dict | None = None  # {"backend", "metric": "wer"|"cer", "error", "transcript"}; None: not verified


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    output: Path
    chunks: int
    done: int
    failed: int
    written: bool  # the chapter file exists and every chunk is done
    failures: tuple[ChunkFailure, ...] = ()
    states: tuple[ChunkState, ...] = ()

    @property
    def left(self) -> int:
        return self.chunks - self.done

    @property
    def flagged(self) -> tuple[ChunkState, ...]:
        return tuple(s for s in self.states if s.flagged)

    def as_dict(self) -> dict:
        """The job as `batchtts status --json` prints it (README, "Status you can script")."""
        return {
            "id": self.job_id,
            "output": str(self.output),
            "written": self.written,
            "total": self.chunks,
            "done": self.done,
            "left": self.left,
            "failed": self.failed,
            "flagged": len(self.flagged),
            "chunks": [asdict(s) for s in self.states],
        }


def _source(c: Chunk) -> str:
    # Hook: the text issue adds Chunk.source (the book's text before normalisation); until it lands the
    # sentence as written is Chunk.source_text.
    return getattr(c, "source", None) or c.source_text


def status(
    jobs: PathLike, *, out: PathLike | None = None, engine: str | None = None, allow_abs_paths: bool = False
) -> list[JobStatus]:
    """Chunks done, left and failed per job; 'done' is the same answer `run` acts on."""
    prep = prepare(Path(jobs), _path(out), engine, allow_abs_paths)
    space = Workspace(prep.out_dir)
    ledger = space.read_ledger()
    try:
        keys = {c.key for c in prep.all_chunks()}
        done = space.done(ledger, prep.all_chunks())
        failed = ledger.failures(keys) if ledger else {}
        verdicts = ledger.verdicts(keys) if ledger else {}
        attempts = ledger.attempts(keys) if ledger else {}
    finally:
        if ledger:
            ledger.close()
    report = []
    for job in prep.jobs:
        chunks = prep.chunks[job.id]
        n_done = sum(c.key in done for c in chunks)
        failures = tuple(ChunkFailure(c.index, c.key, failed[c.key], c.source_text) for c in chunks if c.key in failed)
        states = []
        for c in chunks:
            v = verdicts.get(c.key) if c.key in done else None
            state = "done" if c.key in done else "failed" if c.key in failed else "pending"
            row = verdict_row(v) if v else {}
            states.append(ChunkState(c.index, c.key, c.text, _source(c), state, attempts.get(c.key, 0), **row))
        report.append(
            JobStatus(
                job.id,
                job.output,
                len(chunks),
                n_done,
                len(failures),
                job.output.is_file() and n_done == len(chunks),
                failures,
                tuple(states),
            )
        )
    return report


def review(jobs: PathLike, *, out: PathLike | None = None, review_all: bool = False, engine: str | None = None) -> Path:
    """Write `<out>/review.html` for listening to takes, and return its path; no network needed to view it.

    Per chapter, the flagged chunks (every done chunk with `review_all`), each with an `<audio>` player for the
    kept take (16-bit WAV under `<out>/review/`, referenced by relative path), the spoken text, the ASR
    transcript with the differences marked, the score and the number of takes.

    Args:
        jobs: The job file.
        out: Output folder; None: `out/` beside the job file.
        review_all: Show every done chunk, not only the flagged ones; default False.
        engine: Engine for jobs that name none; None: the default.

    Raises:
        InputError: bad job file (exit 2). EnvironmentProblem: an unreadable ledger (exit 4).
    """
    from batchtts.output.review import ReviewChunk, ReviewJob, write_review
    from batchtts.verify.score import diff

    prep = prepare(Path(jobs), _path(out), engine)
    if not Workspace(prep.out_dir).ledger_path.is_file():
        raise InputError(prep.job_file, None, None, f"nothing has run into {prep.out_dir} yet: no takes to review")
    report = status(jobs, out=out, engine=engine)
    store, by_key = Workspace(prep.out_dir).store(), {c.key: c for c in prep.all_chunks()}
    pages = []
    for job, js in zip(prep.jobs, report, strict=True):
        items = []
        for s in js.states:
            if s.state != "done" or not (review_all or s.flagged):
                continue
            audio, rate = store.read(s.key)
            asr = s.asr or {}
            language = by_key[s.key].language
            marks = tuple(diff(s.text, asr["transcript"], language)) if asr.get("transcript") is not None else ()
            items.append(
                ReviewChunk(s.index, s.key, s.text, s.source, audio, rate, s.takes, s.flagged, asr.get("metric"),
                            asr.get("error"), asr.get("transcript"), marks)
            )  # fmt: skip
        pages.append(ReviewJob(job.id, job.title or job.id, tuple(items)))
    try:
        return write_review(prep.out_dir, pages, f"batchtts review: {prep.job_file.name}")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write the review page in {prep.out_dir}: {exc.strerror or exc}") from None


def retake(
    jobs: PathLike,
    *,
    job: str,
    chunks: tuple[int, ...] = (),
    match: str | None = None,
    out: PathLike | None = None,
    engine: str | None = None,
) -> list[Chunk]:
    """Give chosen chunk positions a new take; the next `run` synthesises only those and re-stitches their files.

    The take number is part of the position's chunk key, so an identical sentence elsewhere keeps its audio;
    with rolling context the sentences chained after it follow. Returns the chunks as they were.

    Args:
        jobs: The job file.
        job: The job id whose chunks to retake.
        chunks: Chunk positions (0-based `index`, as `status` shows them); default none.
        match: Also every position whose spoken or book text contains this string; None: none.
        out: Output folder; None: `out/` beside the job file.
        engine: Engine for jobs that name none; None: the default.

    Raises:
        InputError: no position named, an unknown job or position, or nothing matches (exit 2).
        Busy: a run holds the folder (exit 3).
    """
    prep = prepare(Path(jobs), _path(out), engine)
    if not chunks and not match:
        raise InputError(prep.job_file, None, "chunk", "name the positions to retake: --chunk N or --match TEXT")
    if job not in prep.chunks:
        raise InputError(prep.job_file, None, "job", f"no job '{job}' (jobs: {', '.join(prep.chunks)})")
    mine = prep.chunks[job]
    bad = [n for n in chunks if not 0 <= n < len(mine)]
    if bad:
        raise InputError(prep.job_file, None, "chunk", f"job '{job}' has chunks 0 to {len(mine) - 1}, not {bad[0]}")
    picked = [c for c in mine if c.index in chunks or (match and (match in c.text or match in _source(c)))]
    if not picked:
        raise InputError(prep.job_file, None, "match", f"no chunk of job '{job}' contains {match!r}")
    space = Workspace(prep.out_dir)
    with space.lock():
        ledger = space.open_ledger()
        try:
            for c in picked:
                ledger.set_take(job, c.index, ledger.take_numbers(job).get(c.index, 0) + 1)
        finally:
            ledger.close()
    return picked
