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

import math
from dataclasses import dataclass, replace
from pathlib import Path

from batchtts.config import format_size
from batchtts.engines import DEFAULT_ENGINE, engine_class
from batchtts.engines.base import CostModel
from batchtts.engines.download import DEFAULT_REPO, LOCK_NAME, ModelLock
from batchtts.engines.download import download as fetch_model
from batchtts.errors import EnvironmentProblem, InputError
from batchtts.jobs.parse import default_out_dir, load_jobs
from batchtts.planning.memory import memory_budget
from batchtts.planning.plan import DEFAULT_WASTE_TARGET, Plan
from batchtts.planning.prepare import Prepared, prepare
from batchtts.planning.schedule import plan_engine
from batchtts.state.workspace import Workspace
from batchtts.synthesis.doctor import Check, run_checks
from batchtts.synthesis.executors import ExecutorOptions
from batchtts.synthesis.runner import RunOptions, RunSummary, verify_plans
from batchtts.synthesis.runner import run as _run
from batchtts.synthesis.status import ChunkFailure, ChunkState, JobStatus, retake, review, status  # noqa: F401
from batchtts.synthesis.worker import SynthSettings
from batchtts.text.chunks import Chunk
from batchtts.verify.stage import asr_reserve

PathLike = str | Path
__all__ = [
    *("DEFAULT_WASTE_TARGET", "RunSummary", "chunks", "doctor", "download", "import_book", "plan", "retry", "run"),
    *("retake", "review", "status", "waveform", "ChunkFailure", "ChunkState", "JobStatus"),
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

    def describe(self) -> list[str]:
        """The plan as `batchtts plan` prints it, one line per item."""
        p, out = self, []
        plan, s = p.plan, p.plan.summary()
        out.append(
            f"engine {p.engine}: {s['chunks']} chunks to synthesise ({p.already_done} already done), "
            f"budget {format_size(plan.budget_bytes)}, {format_size(p.cost.bytes_per_token)} per token, "
            f"at most {plan.max_batch} per batch"
        )
        out.append(
            f"{'batch':>5} {'voice':<10} {'size':>4} {'tokens':>11} {'worst mem':>10} {'pred mem':>10} "
            f"{'waste':>6} {'steps':>6}"
        )
        for n, b in enumerate(plan.batches, 1):
            lengths = [i.length for i in b.items]
            out.append(
                f"{n:>5} {b.voice[:10]:<10} {len(b.items):>4} {min(lengths):>5}-{max(lengths):<5} "
                f"{format_size(b.worst_bytes):>10} {format_size(b.predicted_bytes):>10} "
                f"{100 * b.padded_slots / b.useful_slots:>5.1f}% {b.decode_steps:>6}"
            )
        out.append(f"bucket edges (tokens): {', '.join(map(str, s['bucket_edges'])) or '-'}")
        target = (
            f"target {100 * plan.waste_target:.0f}% per batch"
            if math.isfinite(plan.waste_target)
            else ("no target: this engine runs rows unpadded")
        )
        out.append(
            f"padding waste {100 * s['padding_waste']:.1f}% ({target}); "
            f"peak worst-case memory {format_size(s['peak_worst_bytes'])} of {format_size(plan.budget_bytes)}"
        )
        out.append(
            f"decode steps: {s['decode_steps']} batched vs {s['sequential_decode_steps']} one sentence at a time "
            f"({s['step_saving']}x fewer)"
        )
        if p.outlook:
            out.append(f"engine's decoder: {p.outlook['summary']}")
        return out


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
