"""The library: what every command does, callable from Python (a nightly build script needs no subprocess).

    import batchtts

    summary = batchtts.run("jobs/book.jsonl", out="out/book", retries=3)
    if summary.failed:
        batchtts.retry("jobs/book.jsonl", out="out/book")
    for job in batchtts.status("jobs/book.jsonl", out="out/book"):
        print(job.job_id, job.done, job.left)

Errors are `batchtts.errors.BatchttsError` subclasses carrying the exit code the CLI uses; bad input
(including a mode outside its `Literal`) is an `InputError`, which is also a `ValueError`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

from batchtts.engines import DEFAULT_ENGINE, engine_class
from batchtts.engines.download import DEFAULT_REPO, Downloaded
from batchtts.engines.download import download as fetch_model
from batchtts.errors import EnvironmentProblem, InputError
from batchtts.jobs.parse import default_out_dir, load_jobs
from batchtts.planning.memory import memory_budget
from batchtts.planning.plan import DEFAULT_WASTE_TARGET
from batchtts.planning.prepare import prepare
from batchtts.planning.report import EnginePlan, done_keys
from batchtts.planning.schedule import plan_engine
from batchtts.synthesis import status as _status
from batchtts.synthesis.doctor import Check, run_checks
from batchtts.synthesis.executors import ExecutorOptions
from batchtts.synthesis.runner import RunOptions, RunSummary, verify_plans
from batchtts.synthesis.runner import run as _run
from batchtts.synthesis.status import ChunkFailure, ChunkState, JobStatus, retake, review
from batchtts.synthesis.worker import SynthSettings
from batchtts.text.chunks import Chunk
from batchtts.verify.stage import asr_reserve

if TYPE_CHECKING:
    from batchtts.importer.jobfile import ImportReport

PathLike = str | Path
#: Where engines run their models: this machine's CPU, or its CUDA device.
Device = Literal["cpu", "cuda"]
#: Where batches run: this process, or actors on a Ray cluster.
ExecutorKind = Literal["local", "ray"]
#: The chapter format `import_book` writes into the job file (m4b: chapters in .m4a joined into one .m4b).
ImportFormat = Literal["m4b", "m4a", "mp3", "opus", "ogg", "flac", "wav"]

__all__ = [
    "DEFAULT_WASTE_TARGET", "ChunkFailure", "ChunkState", "Device", "Downloaded", "EnginePlan", "ExecutorKind",
    "ImportFormat", "JobStatus", "RunSummary", "chunks", "doctor", "download", "import_book", "plan", "retake",
    "retry", "review", "run", "status",
    "waveform",
]  # fmt: skip

_F = TypeVar("_F", bound=Callable)
_SYNTHESIS_PARAMETERS = """
    out: Output folder; None: `out/` beside the job file. Chunks, ledger and lock live in `<out>/.batchtts/`.
    engine: Engine for jobs that name none (e.g. "embedded", "glmtts"); None: the default, "embedded".
    device: "cpu" or "cuda" (the first CUDA device); default "cpu".
    max_batch: Most chunks per batch (>= 1); None: the engine's default (embedded: a CPU-sized batch,
        GLM-TTS: a queue of 256 feeding its decode slots).
    kv_budget: Bytes of memory for per-sequence state (the KV cache on GLM-TTS), e.g. 12 * 2**30;
        None: measured (CUDA: free device memory after the weights and the activation reserve, less a safety
        margin; CPU: a share of the available RAM; planning/memory.py). A chunk that needs more than the
        whole budget raises InputError.
    waste_target: Most padding per batch, as a share of useful tokens (>= 0; default 0.2).
    retries: New-seed attempts after the first for a chunk that fails or sounds wrong (>= 0; default 2).
    fail_fast: Raise `FailFast` (exit 1) at the first chunk that fails all its attempts; default False:
        failed chunks are reported in `summary.failed` and the rest goes on.
    allow_abs_paths: Let jobs write outside the output folder (absolute or `..` outputs); default False.
    log_json: File to append one JSON event per batch, chunk and job to (and a `run_end` summary); None: none.
    executor: "local" (this process) or "ray" (actors on a Ray cluster; needs `batchtts[ray]`).
    address: Ray cluster address ("auto", "ray://host:port"); None starts a local cluster. Ray only.
    workers: Ray actors; None: one per GPU, or one per CPU core for CPU engines. Ray only.
    gpus_per_worker: GPUs each Ray actor reserves (fractions share one GPU); default 0.0. Ray only.
    progress: Show a progress bar on stderr; None: only when stderr is a terminal.
"""
_RUN_RAISES = """
Raises:
    InputError: bad job file, voice, option or mode (exit 2), before anything is written.
    FailFast: with `fail_fast`, the first chunk that failed all its attempts (exit 1).
    Busy: another batchtts run holds the output folder (exit 3).
    EnvironmentProblem: a missing program or model, an unreadable ledger, a full disk (exit 4).
    Interrupted: ffmpeg stopped by a signal N (exit 128+N). A SIGINT/SIGTERM to this process instead
        ends the run after the current batch with `summary.interrupted_by` set.
"""


def _documented(text: str) -> Callable[[_F], _F]:
    def attach(fn: _F) -> _F:
        fn.__doc__ = (fn.__doc__ or "") + textwrap.indent(text, "    ")
        return fn

    return attach


def _mode(name: str, value: str, choices: object) -> str:
    allowed = get_args(choices)
    if value not in allowed:
        raise InputError(name, None, None, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


@_documented(
    """
Args:
    jobs: The job file (JSON Lines, one job per line).
    fresh: Forget finished chunks and synthesise everything again; default False.
    only_failed: Synthesise only chunks that failed before, with new seeds (what `retry` does); default False.
    verify: Check every take by ASR against the text the engine read (WER for English, CER for Chinese), retake
        a failing one with new seeds up to the job's `verify.retakes` and keep the best take; a chunk no take of
        which passes is written and listed in `summary.flagged`, not failed. Default True; False: no ASR."""
    + _SYNTHESIS_PARAMETERS
    + _RUN_RAISES
)
def run(
    jobs: PathLike,
    *,
    out: PathLike | None = None,
    engine: str | None = None,
    fresh: bool = False,
    only_failed: bool = False,
    device: Device = "cpu",
    max_batch: int | None = None,
    kv_budget: int | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
    retries: int = 2,
    fail_fast: bool = False,
    allow_abs_paths: bool = False,
    log_json: PathLike | None = None,
    executor: ExecutorKind = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool | None = None,
    verify: bool = True,
) -> RunSummary:
    """Synthesize every job and write its chapter file (and books); finished work is never redone.

    Returns a `RunSummary`: chunks synthesised, reused, failed (`summary.failed`: [(chunk key, error)]) and
    verified, retaken and flagged; files written, audio seconds, real-time factor. Failed chunks do not raise.
    """
    opts = RunOptions(
        out_dir=_path(out),
        engine=engine,
        fresh=fresh,
        only_failed=only_failed,
        allow_abs_paths=allow_abs_paths,
        synth=SynthSettings(_mode("device", device, Device), max_batch, kv_budget, waste_target, retries),
        executor=ExecutorOptions(_mode("executor", executor, ExecutorKind), address, workers, gpus_per_worker),
        fail_fast=fail_fast,
        verify=verify,
        progress=progress,
        log_json=_path(log_json),
    )
    return _run(Path(jobs), opts)


@_documented("\nArgs:\n    jobs: The job file." + _SYNTHESIS_PARAMETERS + _RUN_RAISES)
def retry(
    jobs: PathLike,
    *,
    out: PathLike | None = None,
    engine: str | None = None,
    device: Device = "cpu",
    max_batch: int | None = None,
    kv_budget: int | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
    retries: int = 2,
    fail_fast: bool = False,
    allow_abs_paths: bool = False,
    log_json: PathLike | None = None,
    executor: ExecutorKind = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool | None = None,
) -> RunSummary:
    """Synthesize again only the chunks that failed, with new seeds, and write what they complete.

    `run(jobs, only_failed=True, ...)`; returns its `RunSummary`.
    """
    return run(
        jobs, out=out, engine=engine, only_failed=True, device=device, max_batch=max_batch, kv_budget=kv_budget,
        waste_target=waste_target, retries=retries, fail_fast=fail_fast, allow_abs_paths=allow_abs_paths,
        log_json=log_json, executor=executor, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
        progress=progress,
    )  # fmt: skip


_READ_PARAMETERS = """
Args:
    jobs: The job file (JSON Lines, one job per line).
    out: Output folder; None: `out/` beside the job file.
    engine: Engine for jobs that name none; None: "embedded".
    allow_abs_paths: Accept jobs whose outputs lie outside the output folder; default False.

Raises:
    InputError: bad job file, voice or option (exit 2). Nothing is written.
"""


@_documented(_READ_PARAMETERS)
def status(
    jobs: PathLike, *, out: PathLike | None = None, engine: str | None = None, allow_abs_paths: bool = False
) -> list[JobStatus]:
    """Chunks done, left and failed per job (a `JobStatus` each, in job-file order); the ledger is only read.

    'done' is the same answer `run` acts on: a chunk whose file is missing or altered is not done.
    """
    return _status.status(jobs, out=out, engine=engine, allow_abs_paths=allow_abs_paths)


def plan(
    jobs: PathLike,
    *,
    out: PathLike | None = None,
    engine: str | None = None,
    device: Device = "cpu",
    max_batch: int | None = None,
    kv_budget: int | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
    include_done: bool = False,
) -> list[EnginePlan]:
    """How the pending chunks would be batched, one `EnginePlan` per engine, without loading any model.

    Args:
        jobs: The job file (JSON Lines, one job per line).
        out: Output folder whose finished chunks are left out; None: `out/` beside the job file.
        engine: Engine for jobs that name none; None: "embedded".
        device: "cpu" or "cuda": whose memory the budget is measured from; default "cpu".
        max_batch: Most chunks per batch (>= 1); None: the engine's default.
        kv_budget: Bytes of memory for per-sequence state; None: measured from `device` (on "cuda" this
            reads free device memory, minus the engine's weights, which are not loaded).
        waste_target: Most padding per batch, as a share of useful tokens (>= 0; default 0.2).
        include_done: Plan every chunk, not only those not yet done; default False.

    Raises:
        InputError: bad job file, an unknown mode, or a chunk that does not fit `kv_budget` alone (exit 2).
        EnvironmentProblem: free CUDA memory cannot be read and no `kv_budget` was given (exit 4).
    """
    prep = prepare(Path(jobs), _path(out), engine)
    device = _mode("device", device, Device)
    done = set() if include_done else done_keys(prep)
    plans = []
    for name in prep.engines():
        cls = engine_class(name)
        chunks = prep.chunks_for(name)
        pending = [c for c in chunks if c.key not in done]
        cost = replace(
            cls.cost_model(), asr_reserve_bytes=asr_reserve(verify_plans(prep, pending, device, quiet=True), device)
        )
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


@_documented(_READ_PARAMETERS)
def chunks(
    jobs: PathLike, *, out: PathLike | None = None, engine: str | None = None, allow_abs_paths: bool = False
) -> list[Chunk]:
    """Every chunk as its engine will read it (normalised text, key, break), in reading order, without weights."""
    return prepare(Path(jobs), _path(out), engine, allow_abs_paths).all_chunks()


def doctor(jobs: PathLike | None = None, *, out: PathLike | None = None, engines: tuple[str, ...] = ()) -> list[Check]:
    """Programs, packages, device memory, model files and the output folder: what a run will need.

    Args:
        jobs: A job file whose engines and output folder to check; None: no job file.
        out: Output folder to check for write access and free space; None: `out/` beside `jobs`, if given.
        engines: Engines to check besides those `jobs` names; none at all: "embedded".

    Returns one `Check` (name, ok, detail) per item; failures are returned, not raised.
    Raises InputError (exit 2) when `jobs` cannot be read.
    """
    names = list(engines)
    if jobs is not None:
        names += [j.engine or DEFAULT_ENGINE for j in load_jobs(Path(jobs), _path(out))]
    folder = _path(out) or (default_out_dir(Path(jobs)) if jobs is not None else None)
    return run_checks(folder.resolve() if folder else None, list(dict.fromkeys(names)) or [DEFAULT_ENGINE])


def download(
    repo: str = DEFAULT_REPO,
    *,
    revision: str = "main",
    local_dir: PathLike | None = None,
    endpoint: str | None = None,
    max_workers: int = 8,
    campplus_url: str | None = None,
) -> Downloaded:
    """Fetch model weights once (resumable, pinned, mirror-aware); GLM-TTS also gets its CAM++ speaker model.

    Args:
        repo: Hub repository, "owner/name"; default "zai-org/GLM-TTS".
        revision: Branch, tag or commit to pin; default "main".
        local_dir: Where the model goes; None: `models/<name>`.
        endpoint: Hub or mirror URL; None: $HF_ENDPOINT, else the hub. With HF_HUB_OFFLINE=1 nothing is fetched.
        max_workers: Parallel file downloads (>= 1); default 8.
        campplus_url: GLM-TTS's CAM++ model; None: the pinned file; "" skips it.

    Raises EnvironmentProblem (exit 4): repository or revision not found, network down with no complete copy.
    """
    from batchtts.engines.glmtts.assets import campplus_after_download

    folder, lock, fetched = fetch_model(repo, revision, _path(local_dir), endpoint, max_workers)
    note = campplus_after_download(repo, folder, campplus_url)
    return Downloaded(folder, lock, fetched, (note.rstrip("\n"),) if note else ())


def waveform(chapter: PathLike, *, png: PathLike | None = None, seconds: float | None = None) -> Path:
    """A picture of a chapter's waveform with its chunk boundaries and pauses; returns the picture's path.

    Args:
        chapter: A chapter file written by `run` (its timings, `<chapter>.json`, must lie beside it).
        png: Picture to write; None: beside the chapter, with suffix .png.
        seconds: Show only the first `seconds` seconds (>= 1); None: the whole chapter.

    Raises InputError (exit 2) without the timings; EnvironmentProblem (exit 4) without matplotlib.
    """
    from batchtts.output.plot import waveform_png

    chapter = Path(chapter)
    if not chapter.with_suffix(".json").is_file():
        raise InputError(chapter, None, None, "no timings beside it (.json); was it written by batchtts run?")
    return waveform_png(chapter, _path(png) or chapter.with_suffix(".png"), seconds)


def import_book(
    source: PathLike,
    jobs_out: PathLike,
    *,
    voice: PathLike | None = None,
    voice_text: str | None = None,
    engine: str | None = None,
    fmt: ImportFormat = "m4b",
    text_dir: PathLike | None = None,
    heading_level: int | None = None,
    include_matter: bool = False,
    book_title: str | None = None,
    author: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """An EPUB, Markdown or text file (or a folder of .md/.txt) to a job file, one job per chapter.

    Args:
        source: The book: .epub, .md, .txt, or a folder of .md/.txt files (natural order).
        jobs_out: Job file to write.
        voice: Narrator clip (3-10 s of speech) every job names; None: the engine's own voice.
        voice_text: Transcript of `voice`; None: none (engines that clone need it).
        engine: Engine every job names; None: none, so `run` decides.
        fmt: Chapter format; "m4b": chapters in .m4a, which `run` joins into one .m4b; default "m4b".
        text_dir: Where the chapters' text goes; None: a folder named after the job file, beside it.
        heading_level: Markdown: cut at headings of this level (1-6) and above; None: the top level used twice.
        include_matter: Keep front and back matter (contents, copyright, notes); default False.
        book_title, author: Book metadata; None: from the source.
        force: Replace an existing job file (it may hold the user's edits); default False.
        dry_run: Write nothing; the report says what would be written; default False.

    Returns the `ImportReport` (chapters, records, files written, character accounting).
    Raises InputError (exit 2): source not found or unreadable, no chapter to speak, job file exists.
    """
    from batchtts.importer import import_source

    fmt = _mode("fmt", fmt, ImportFormat)
    return import_source(
        Path(source),
        Path(jobs_out),
        voice=_path(voice),
        voice_text=voice_text,
        engine=engine,
        fmt=fmt,
        text_dir=_path(text_dir),
        heading_level=heading_level,
        dry_run=dry_run,
        include_matter=include_matter,
        force=force,
        book_title=book_title,
        author=author,
    )


def _path(value: PathLike | None) -> Path | None:
    return Path(value) if value is not None else None
