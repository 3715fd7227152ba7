"""The library: what every command does, callable from Python (a nightly build script needs no subprocess).

    import batchtts

    summary = batchtts.run("jobs/book.jsonl", out="out/book", retries=3)
    if summary.failed:
        batchtts.retry("jobs/book.jsonl", out="out/book")
    for job in batchtts.status("jobs/book.jsonl", out="out/book"):
        print(job.job_id, job.done, job.left)

Errors are `batchtts.errors.BatchttsError` subclasses carrying the exit code the CLI uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from batchtts.engines import DEFAULT_ENGINE, engine_class
from batchtts.engines.base import CostModel
from batchtts.engines.download import DEFAULT_REPO, LOCK_NAME, ModelLock
from batchtts.engines.download import download as fetch_model
from batchtts.errors import EnvironmentProblem, InputError
from batchtts.jobs.parse import default_out_dir, load_jobs
from batchtts.output.writer import verdict_row
from batchtts.planning.memory import memory_budget
from batchtts.planning.plan import DEFAULT_WASTE_TARGET, Plan
from batchtts.planning.prepare import Prepared, prepare
from batchtts.planning.schedule import plan_engine
from batchtts.state.workspace import Workspace
from batchtts.synthesis.doctor import Check, run_checks
from batchtts.synthesis.executors import ExecutorOptions
from batchtts.synthesis.runner import RunOptions, RunSummary
from batchtts.synthesis.runner import run as _run
from batchtts.synthesis.worker import SynthSettings
from batchtts.text.chunks import Chunk

PathLike = str | Path
__all__ = [
    *("DEFAULT_WASTE_TARGET", "RunSummary", "chunks", "doctor", "download", "import_book", "plan", "retry", "run"),
    *("retake", "review", "status", "waveform"),
]


def run(
    jobs: PathLike,
    *,
    out: PathLike | None = None,
    engine: str | None = None,
    fresh: bool = False,
    only_failed: bool = False,
    device: str = "cpu",
    max_batch: int | None = None,
    kv_budget: int | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
    retries: int = 2,
    fail_fast: bool = False,
    allow_abs_paths: bool = False,
    log_json: PathLike | None = None,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool | None = None,
    verify: bool = True,
) -> RunSummary:
    """Synthesize every job and write its chapter file (and books); finished work is never redone.

    Failed chunks do not raise: they are in `summary.failed`; chunks no take of which passed ASR verification
    are written with their best take and listed in `summary.flagged`. `verify=False` checks no take by ASR.
    Bad input raises InputError before anything
    is written; a busy output folder, a missing model or a full disk raise other BatchttsErrors.
    """
    opts = RunOptions(
        out_dir=_path(out),
        engine=engine,
        fresh=fresh,
        only_failed=only_failed,
        allow_abs_paths=allow_abs_paths,
        synth=SynthSettings(device, max_batch, kv_budget, waste_target, retries),
        executor=ExecutorOptions(executor, address, workers, gpus_per_worker),
        fail_fast=fail_fast,
        verify=verify,
        progress=progress,
        log_json=_path(log_json),
    )
    return _run(Path(jobs), opts)


def retry(jobs: PathLike, **options) -> RunSummary:
    """Synthesize again only the chunks that failed, with new seeds; `options` as for `run`."""
    return run(jobs, only_failed=True, **options)


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
    """Write `<out>/review.html`: per chapter its flagged chunks (every done chunk with `review_all`), each with a
    player for the kept take (16-bit WAV under `<out>/review/`), the spoken text, the transcript with the
    differences marked, the score and the number of takes. Returns the page's path; no network needed."""
    from batchtts.output.review import ReviewChunk, ReviewJob, write_review
    from batchtts.verify.score import diff

    prep = prepare(Path(jobs), _path(out), engine)
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
    """Give chunk positions of job `job` a new take: positions `chunks`, and those whose spoken or book text
    contains `match`. The take number is part of the position's key, so an identical sentence elsewhere keeps
    its audio; with rolling context the sentences after it follow. The next `run` synthesises only those and
    re-stitches their chapters and books. Returns the chunks as they were. Raises InputError for an unknown
    job or position, or when nothing matches; a busy output folder raises as `run` does."""
    prep = prepare(Path(jobs), _path(out), engine)
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


@dataclass(frozen=True)
class EnginePlan:
    engine: str
    cost: CostModel
    already_done: int  # distinct chunks needing no synthesis
    plan: Plan
    outlook: dict | None = None  # the engine's own view (GLM-TTS: decode slots, steps, time), if it has one

    def as_dict(self) -> dict:
        """The plan as `batchtts plan --json` prints it."""
        return {
            "engine": self.engine,
            "already_done": self.already_done,
            "bytes_per_token": self.cost.bytes_per_token,
            **self.plan.summary(),
            **({"decode": self.outlook} if self.outlook else {}),
            "batches": [
                {
                    "voice": b.voice,
                    "size": len(b.items),
                    "chunks": [f"{i.chunk.job_id}#{i.chunk.index}" for i in b.items],
                    "text_tokens": [i.text_tokens for i in b.items],
                    "predicted_decode": [i.predicted for i in b.items],
                    "worst_decode": [i.worst for i in b.items],
                    "worst_bytes": b.worst_bytes,
                    "predicted_bytes": b.predicted_bytes,
                    "padding_waste": round(b.padded_slots / b.useful_slots, 4),
                    "decode_steps": b.decode_steps,
                }
                for b in self.plan.batches
            ],
        }


def plan(
    jobs: PathLike,
    *,
    out: PathLike | None = None,
    engine: str | None = None,
    device: str = "cpu",
    max_batch: int | None = None,
    kv_budget: int | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
    include_done: bool = False,
) -> list[EnginePlan]:
    """How the pending chunks would be batched per engine, without loading any model."""
    prep = prepare(Path(jobs), _path(out), engine)
    done = set() if include_done else _done(prep)
    plans = []
    for name in prep.engines():
        cls = engine_class(name)
        cost = cls.cost_model()
        chunks = prep.chunks_for(name)
        pending = [c for c in chunks if c.key not in done]
        try:
            budget = memory_budget(device, cost, kv_budget)
        except (RuntimeError, AssertionError) as exc:
            raise EnvironmentProblem(f"cannot read free CUDA memory ({exc}); pass --kv-budget") from None
        batches = plan_engine(prep, name, budget, max_batch, waste_target, pending)
        queue = [(b.prefix_tokens, i.text_tokens, i.chunk.language) for b in batches.batches for i in b.items]
        outlook = cls.decode_outlook(queue, budget, device)
        done_here = len({c.key for c in chunks}) - len({c.key for c in pending})
        plans.append(EnginePlan(name, cost, done_here, batches, outlook))
    return plans


def chunks(
    jobs: PathLike, *, out: PathLike | None = None, engine: str | None = None, allow_abs_paths: bool = False
) -> list[Chunk]:
    """Every chunk as its engine will read it, in reading order, without loading model weights."""
    return prepare(Path(jobs), _path(out), engine, allow_abs_paths).all_chunks()


def doctor(jobs: PathLike | None = None, *, out: PathLike | None = None, engines: tuple[str, ...] = ()) -> list[Check]:
    """Programs, packages, device memory, model files and the output folder: what a run will need."""
    names = list(engines)
    if jobs is not None:
        names += [j.engine or DEFAULT_ENGINE for j in load_jobs(Path(jobs), _path(out))]
    folder = _path(out) or (default_out_dir(Path(jobs)) if jobs is not None else None)
    return run_checks(folder.resolve() if folder else None, list(dict.fromkeys(names)) or [DEFAULT_ENGINE])


@dataclass(frozen=True)
class Downloaded:
    folder: Path
    lock: ModelLock
    fetched: bool  # False: a complete copy was reused without any network call
    notes: tuple[str, ...] = ()  # what else the engine fetched beside the hub files

    @property
    def lock_path(self) -> Path:
        return self.folder / LOCK_NAME


def download(
    repo: str = DEFAULT_REPO,
    *,
    revision: str = "main",
    local_dir: PathLike | None = None,
    endpoint: str | None = None,
    max_workers: int = 8,
    campplus_url: str | None = None,
) -> Downloaded:
    """Fetch model weights once (resumable, pinned, mirror-aware); GLM-TTS also gets its CAM++ speaker model."""
    from batchtts.engines.glmtts.assets import campplus_after_download

    folder, lock, fetched = fetch_model(repo, revision, _path(local_dir), endpoint, max_workers)
    note = campplus_after_download(repo, folder, campplus_url)
    return Downloaded(folder, lock, fetched, (note.rstrip("\n"),) if note else ())


def waveform(chapter: PathLike, *, png: PathLike | None = None, seconds: float | None = None) -> Path:
    """A picture of a chapter's waveform with its chunk boundaries and pauses (needs the chapter's .json)."""
    from batchtts.output.plot import waveform_png

    chapter = Path(chapter)
    if not chapter.with_suffix(".json").is_file():
        raise InputError(chapter, None, None, "no timings beside it (.json); was it written by batchtts run?")
    return waveform_png(chapter, _path(png) or chapter.with_suffix(".png"), seconds)


def import_book(source: PathLike, jobs_out: PathLike, **options):
    """An EPUB, Markdown or text source (or a folder of them) to a job file; see importer.import_source."""
    from batchtts.importer import import_source

    return import_source(Path(source), Path(jobs_out), **options)


def _done(prep: Prepared) -> set[str]:
    space = Workspace(prep.out_dir)
    ledger = space.read_ledger()
    try:
        return space.done(ledger, prep.all_chunks())
    finally:
        if ledger:
            ledger.close()


def _path(value: PathLike | None) -> Path | None:
    return Path(value) if value is not None else None
