"""Drive a job file through prepare, synthesis and output; the engine is a black box here."""

from __future__ import annotations

import errno
import logging
import resource
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchtts.atomic import remove_stale_temps
from batchtts.errors import EnvironmentProblem
from batchtts.events import EventLog
from batchtts.interrupt import GracefulStop
from batchtts.jobs import default_out_dir
from batchtts.ledger import Ledger
from batchtts.lock import OutputLock
from batchtts.output import Writer, state_dir
from batchtts.plan import DEFAULT_WASTE_TARGET
from batchtts.prepare import Prepared, prepare
from batchtts.store import ChunkStore
from batchtts.synthesis import Committer, History, SynthSettings, SynthStats, synthesise_locally
from batchtts.voice import VoiceCache

log = logging.getLogger("batchtts")


@dataclass
class RunOptions:
    out_dir: Path | None = None
    engine: str | None = None  # for jobs that name none
    device: str = "cpu"
    fresh: bool = False
    max_batch: int | None = None
    progress: bool | None = None  # None: only when stderr is a terminal
    kv_budget: int | None = None  # bytes; None: measured from the device
    waste_target: float = DEFAULT_WASTE_TARGET
    retries: int = 2
    fail_fast: bool = False
    only_failed: bool = False  # `batchtts retry`
    allow_abs_paths: bool = False
    log_json: Path | None = None
    executor: str = "local"  # or "ray"
    address: str | None = None  # Ray cluster: "auto", "ray://host:port"; None starts a local one
    workers: int | None = None  # Ray actors (default: one per GPU, or per CPU for CPU engines)
    gpus_per_worker: float = 0.0

    def synth_settings(self) -> SynthSettings:
        return SynthSettings(
            self.device, self.max_batch, self.kv_budget, self.waste_target, self.retries, self.fail_fast, self.progress
        )


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
    def synthesised(self) -> int:
        return self.stats.synthesised

    @property
    def failed(self) -> list[tuple[str, str]]:
        return self.stats.failed

    @property
    def audio_seconds(self) -> float:
        return self.stats.audio_seconds

    @property
    def real_time_factor(self) -> float:
        return self.stats.real_time_factor

    def as_dict(self) -> dict:
        return {
            "jobs": self.jobs,
            "chunks": self.chunks,
            "reused": self.reused,
            "synthesised": self.stats.synthesised,
            "batches": self.stats.batches,
            "retried": self.stats.retried,
            "failed": len(self.stats.failed),
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
    out_dir = Path(opts.out_dir).resolve() if opts.out_dir else default_out_dir(Path(job_file))
    prep = prepare(job_file, out_dir, opts.engine, opts.allow_abs_paths)  # every input error surfaces here
    events = EventLog(opts.log_json)
    summary = RunSummary(jobs=len(prep.jobs), chunks=sum(len(cs) for cs in prep.chunks.values()))
    try:
        with OutputLock(state_dir(out_dir)), GracefulStop() as stop:
            events.emit(
                "run_start", job_file=str(job_file), out_dir=str(out_dir), jobs=len(prep.jobs), chunks=summary.chunks
            )
            _clean(prep, opts)
            ledger = Ledger(state_dir(out_dir) / "ledger.sqlite")
            try:
                _run(prep, opts, ledger, events, summary, stop)
            finally:
                ledger.close()
    except OSError as exc:
        raise _environment(exc) from None
    except sqlite3.OperationalError as exc:
        raise _environment(exc) from None
    finally:
        summary.wall_seconds = time.monotonic() - started
        summary.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        events.emit("run_end", **summary.as_dict())
        events.close()
    return summary


def _environment(exc: Exception) -> EnvironmentProblem:
    """Disk full, permissions and the like: exit 4 with what to do; finished chunks stay finished."""
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "disk is full" in str(exc)
    where = getattr(exc, "filename", None) or "the output folder"
    if full:
        return EnvironmentProblem(
            f"disk full while writing {where}; free some space and run again (finished chunks are kept)"
        )
    return EnvironmentProblem(f"cannot write {where}: {getattr(exc, 'strerror', None) or exc}")


def _clean(prep: Prepared, opts: RunOptions) -> None:
    folder = state_dir(prep.out_dir)
    if opts.fresh:
        for sub in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
            (folder / sub).unlink(missing_ok=True)
        shutil.rmtree(folder / "chunks", ignore_errors=True)
    stale = remove_stale_temps(folder, recursive=True)
    stale += sum(remove_stale_temps(parent) for parent in {prep.out_dir} | {job.output.parent for job in prep.jobs})
    if stale:
        log.info("removed %d temporary files left by an interrupted run", stale)


def rolling_history(prep: Prepared, store: ChunkStore, done: set[str]) -> History:
    """Finished rolling-context sentences with the speech tokens they decoded, to prompt the next ones."""
    history: History = {}
    for c in (c for cs in prep.chunks.values() for c in cs if c.rolling and c.key in done):
        tokens = store.read_tokens(c.key)
        if tokens is not None:
            history[c.key] = (c.after, c.text, tokens)
    return history


def _run(
    prep: Prepared, opts: RunOptions, ledger: Ledger, events: EventLog, summary: RunSummary, stop: GracefulStop
) -> None:
    store = ChunkStore(state_dir(prep.out_dir) / "chunks")
    run_id = ledger.start_run(prep.job_file)
    for job in prep.jobs:
        ledger.set_layout(
            job.id, prep.job_file, job.output, [(c.index, c.key, c.source_text, c.brk) for c in prep.chunks[job.id]]
        )
    all_keys = {c.key for cs in prep.chunks.values() for c in cs}
    ledger.recover_from(store, all_keys)
    done = {k for k, d in ledger.done_chunks(all_keys).items() if store.intact(k, d.nbytes, d.sha256)}
    history = rolling_history(prep, store, done)
    done -= {c.key for cs in prep.chunks.values() for c in cs if c.rolling and c.key not in history}
    summary.reused = sum(1 for cs in prep.chunks.values() for c in cs if c.key in done)
    attempts = ledger.failed_attempts(all_keys)
    writer = Writer(prep, ledger, store, events)
    writer.chapters_ready(done)
    todo_keys = (set(attempts) if opts.only_failed else all_keys) - done
    if opts.only_failed:
        log.info("retrying %d failed chunks", len(todo_keys))
    elif not todo_keys:
        log.info("all %d chunks already synthesised; no synthesis needed", summary.chunks)
    try:
        for name in dict.fromkeys(prep.engine_of.values()):
            todo = [c for c in prep.chunks_for(name) if c.key in todo_keys]
            if todo and not stop.requested:
                committer = Committer(
                    name,
                    len({c.key for c in todo}),
                    opts.synth_settings(),
                    ledger,
                    store,
                    run_id,
                    events,
                    summary.stats,
                    done,
                    writer.chapters_ready,
                )
                try:
                    if opts.executor == "ray":
                        from batchtts.distributed import RayOptions, synthesise_on_ray

                        ray_opts = RayOptions(opts.address, opts.workers, opts.gpus_per_worker)
                        synthesise_on_ray(
                            name, todo, prep.voices, committer, attempts, lambda: stop.requested, ray_opts, history
                        )
                    else:
                        synthesise_locally(
                            name,
                            todo,
                            prep.voices,
                            VoiceCache(state_dir(prep.out_dir) / "voices"),
                            committer,
                            attempts,
                            lambda: stop.requested,
                            history,
                        )
                finally:
                    committer.close()
        if not stop.requested:
            writer.books()
    finally:
        summary.written, summary.up_to_date, summary.chapters = writer.written, writer.up_to_date, writer.chapters
        summary.interrupted_by = stop.signum
        status = "interrupted" if stop.requested else "failed" if summary.failed else "done"
        ledger.finish_run(run_id, status, summary.as_dict())
