"""Drive a job file through prepare, synthesis and output; the engine is a black box here."""

from __future__ import annotations

import errno
import logging
import resource
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchtts.engines import engine_class
from batchtts.errors import EnvironmentProblem, InputError, PlanError
from batchtts.output.encode import write_failure
from batchtts.output.loudness import preload
from batchtts.output.writer import Writer
from batchtts.planning.prepare import Prepared, prepare
from batchtts.planning.schedule import plan_engine
from batchtts.state.events import EventLog
from batchtts.state.interrupt import GracefulStop
from batchtts.state.ledger import Ledger
from batchtts.state.store import ChunkStore
from batchtts.state.workspace import Workspace
from batchtts.synthesis.commit import Committer, SynthStats
from batchtts.synthesis.executors import ExecutorOptions, Work, executor
from batchtts.synthesis.worker import History, SynthSettings
from batchtts.text.chunks import Chunk
from batchtts.verify.stage import Plans, plan_verification

log = logging.getLogger("batchtts")


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path | None = None
    engine: str | None = None  # for jobs that name none
    fresh: bool = False
    only_failed: bool = False  # `batchtts retry`
    allow_abs_paths: bool = False
    synth: SynthSettings = SynthSettings()
    executor: ExecutorOptions = ExecutorOptions()
    fail_fast: bool = False
    verify: bool = True  # False (`--no-verify`): no ASR check of any take, whatever the jobs say
    progress: bool | None = None  # None: only when stderr is a terminal
    log_json: Path | None = None


@dataclass
class RunSummary:
    jobs: int = 0
    chunks: int = 0
    reused: int = 0
    stats: SynthStats = field(default_factory=SynthStats)
    wall_seconds: float = 0.0
    written: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    chapters: dict[str, dict] = field(default_factory=dict)  # job id -> duration and loudness
    interrupted_by: int | None = None  # signal number
    peak_rss_mib: float = 0.0

    @property
    def synthesized(self) -> int:
        return self.stats.synthesized

    @property
    def failed(self) -> list[tuple[str, str]]:
        return self.stats.failed

    @property
    def flagged(self) -> list[tuple[str, str]]:
        """(key, score and transcript) of chunks kept with a take that never passed verification."""
        return self.stats.flagged

    def as_dict(self) -> dict:
        return {
            "jobs": self.jobs,
            "chunks": self.chunks,
            "reused": self.reused,
            "synthesised": self.stats.synthesized,  # the event log's key since its first version
            "batches": self.stats.batches,
            "retried": self.stats.retried,
            "failed": len(self.stats.failed),
            "verified": self.stats.verified,
            "retaken": self.stats.retaken,
            "flagged": len(self.stats.flagged),
            "verify_seconds": round(self.stats.verify_seconds, 3),
            "audio_seconds": round(self.stats.audio_seconds, 3),
            "audio_hours": round(self.stats.audio_seconds / 3600, 4),
            "wall_seconds": round(self.wall_seconds, 3),
            "real_time_factor": round(self.stats.real_time_factor, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "interrupted_by": self.interrupted_by,
            "written": self.written,
            "chapters": self.chapters,
        }


def run(job_file: Path, opts: RunOptions) -> RunSummary:
    started = time.monotonic()
    prep = prepare(job_file, opts.out_dir, opts.engine, opts.allow_abs_paths)  # every input error surfaces here
    _preflight(prep, opts.synth)
    space = Workspace(prep.out_dir)
    try:
        events = EventLog(opts.log_json)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write the event log {opts.log_json}: {exc.strerror or exc}") from None
    summary = RunSummary(jobs=len(prep.jobs), chunks=sum(len(cs) for cs in prep.chunks.values()))
    try:
        with space.lock(), GracefulStop() as stop:
            events.emit(
                "run_start",
                job_file=str(job_file),
                out_dir=str(prep.out_dir),
                jobs=len(prep.jobs),
                chunks=summary.chunks,
            )
            if opts.fresh:
                space.forget()
            if stale := space.remove_stale_temps(job.output.parent for job in prep.jobs):
                log.info("removed %d temporary files left by an interrupted run", stale)
            ledger = space.open_ledger()
            try:
                _run(prep, space, opts, ledger, events, summary, stop)
            finally:
                ledger.close()
    except (OSError, sqlite3.OperationalError) as exc:
        raise _environment(exc) from None
    except PlanError as exc:  # the measured budget shrank below a chunk mid-run; what finished is kept
        raise InputError(prep.job_file, None, None, str(exc)) from None
    finally:
        summary.wall_seconds = time.monotonic() - started
        summary.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        events.emit("run_end", **summary.as_dict())
        events.close()
    return summary


def _preflight(prep: Prepared, settings: SynthSettings) -> None:
    """What would otherwise stop a run only after its models load: no CUDA device, or a chunk that can
    never fit `--kv-budget` (the same answer `plan` gives)."""
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EnvironmentProblem(
                f"--device cuda, but torch {torch.__version__} sees no CUDA device (use --device cpu)"
            )
    if settings.kv_budget is not None:
        for name in prep.engines():
            plan_engine(prep, name, settings.kv_budget, settings.max_batch, settings.waste_target)


def _environment(exc: Exception) -> EnvironmentProblem:
    """Disk full, permissions and the like: exit 4 with what to do; finished chunks stay finished."""
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "disk is full" in str(exc)
    where = getattr(exc, "filename", None) or "the output folder"
    return write_failure(Path(where), getattr(exc, "strerror", None) or exc, full)


def _check_owner(prep: Prepared, ledger: Ledger) -> None:
    """Two job files with the same ids in one output folder would rewrite each other's chapters on every
    run: refuse while the job file the ledger records for an id still exists (a moved one gives it up)."""
    mine = prep.job_file.resolve()
    owners = ledger.job_files()
    for job in prep.jobs:
        other = Path(owners.get(job.id) or mine)
        if other.is_absolute() and other != mine and other.is_file() and not other.samefile(mine):
            raise job.source.error(
                "id",
                f"job '{job.id}' in {prep.out_dir} belongs to the job file {other}; give each job file its own --out",
            )


def verify_plans(prep: Prepared, pending: list[Chunk], device: str, enabled: bool = True, quiet: bool = False) -> Plans:
    """Which backend verifies the pending chunks of each job and language (skipped languages said once)."""
    languages: dict[str, set[str]] = {}
    for c in pending:
        languages.setdefault(c.job_id, set()).add(c.language)
    speaks = {job.id: engine_class(prep.engine_of[job.id]).speaks for job in prep.jobs}
    return plan_verification(prep.jobs, languages, speaks, device, enabled=enabled, quiet=quiet)


def rolling_history(prep: Prepared, store: ChunkStore, done: set[str]) -> History:
    """Finished rolling-context sentences with the speech tokens they decoded, to prompt the next ones."""
    history: History = {}
    for c in (c for cs in prep.chunks.values() for c in cs if c.rolling and c.key in done):
        tokens = store.read_tokens(c.key)
        if tokens is not None:
            history[c.key] = (c.after, c.text, tokens)
    return history


def _run(
    prep: Prepared,
    space: Workspace,
    opts: RunOptions,
    ledger: Ledger,
    events: EventLog,
    summary: RunSummary,
    stop: GracefulStop,
) -> None:
    store = space.store()
    _check_owner(prep, ledger)
    run_id = ledger.start_run(prep.job_file)
    for job in prep.jobs:
        rows = [(c.index, c.key, c.source_text, c.brk) for c in prep.chunks[job.id]]
        ledger.set_layout(job.id, prep.job_file.resolve(), job.output, rows)
    all_chunks = prep.all_chunks()
    all_keys = {c.key for c in all_chunks}
    ledger.recover_from(store, all_keys)
    done = space.done(ledger, all_chunks)
    history = rolling_history(prep, store, done)
    summary.reused = sum(1 for c in all_chunks if c.key in done)
    attempts = ledger.failed_attempts(all_keys)
    writer = Writer(prep, space, ledger, store, events)
    writer.chapters_ready(done)
    todo_keys = (set(attempts) if opts.only_failed else all_keys) - done
    if opts.only_failed:
        log.info("retrying %d failed chunks", len(todo_keys))
    elif not todo_keys:
        log.info("all %d chunks already synthesized; no synthesis needed", summary.chunks)
    if todo_keys and not stop.requested:
        preload()  # the output stage's imports, beside the engine's load instead of after synthesis
    runner = executor(opts.executor)
    plans = verify_plans(prep, [c for c in prep.all_chunks() if c.key in todo_keys], opts.synth.device, opts.verify)
    try:
        for name in prep.engines():
            todo = [c for c in prep.chunks_for(name) if c.key in todo_keys]
            if not todo or stop.requested:
                continue
            committer = Committer(
                name,
                len({c.key for c in todo}),
                ledger,
                store,
                run_id,
                events,
                summary.stats,
                done,
                writer.chapters_ready,
                fail_fast=opts.fail_fast,
                progress=opts.progress,
            )
            try:
                work = Work(name, todo, prep.voices, attempts, history, plans)
                runner.execute(work, opts.synth, committer.commit, lambda: stop.requested, space.voice_cache())
            finally:
                committer.close()
        if not stop.requested:
            writer.books()
    finally:
        try:
            writer.finish()  # chapters still being written in the background (stitching overlaps synthesis)
        finally:
            summary.written, summary.up_to_date, summary.chapters = writer.written, writer.up_to_date, writer.chapters
            summary.interrupted_by = stop.signum
            status = "interrupted" if stop.requested else "failed" if summary.failed else "done"
            ledger.finish_run(run_id, status, summary.as_dict())
