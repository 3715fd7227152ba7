"""Command line: `batchtts run`, `batchtts status`."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import click

from batchtts import __version__
from batchtts.engines import engine_class
from batchtts.errors import EXIT_CHUNKS_FAILED, BatchttsError, EnvironmentProblem, InputError
from batchtts.ledger import Ledger
from batchtts.plan import (
    DEFAULT_WASTE_TARGET,
    PlanError,
    effective_waste_target,
    format_size,
    memory_budget,
    parse_size,
    plan_batches,
)
from batchtts.runner import RunOptions, prefix_tokens, prepare, run, state_dir

log = logging.getLogger("batchtts")

JOBS = click.argument("jobs", type=click.Path(path_type=Path))
OUT = click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: out/ beside the job file).",
)
ENGINE = click.option("--engine", default=None, help="Engine for jobs that name none (default: embedded).")


class Size(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


KV_BUDGET = click.option(
    "--kv-budget",
    type=Size(),
    default=None,
    help="Memory for per-sequence state, e.g. 12GiB (default: measured from the device).",
)
MAX_BATCH = click.option("--max-batch", type=click.IntRange(min=1), default=None, help="Most chunks per batch.")
WASTE = click.option(
    "--waste-target",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_WASTE_TARGET,
    show_default=True,
    help="Most padding per batch, as a share of useful tokens.",
)
DEVICE = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)


def _setup_logging(verbose: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="batchtts: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("batchtts").setLevel(logging.DEBUG if verbose else logging.INFO)


def _fail(exc: BatchttsError) -> None:
    click.echo(f"batchtts: error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group()
@click.version_option(__version__)
def main() -> None:
    """Batch text-to-speech for long-form audio: chapters in, audiobook files out, resumable."""


@main.command("run")
@JOBS
@OUT
@ENGINE
@click.option("--fresh", is_flag=True, help="Forget finished chunks and synthesise everything again.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=None, help="Most chunks per batch.")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
def run_cmd(
    jobs: Path, out_dir: Path | None, engine: str | None, fresh: bool, device: str, max_batch: int | None, verbose: int
) -> None:
    """Synthesise every job in JOBS and write its chapter file; finished work is never redone."""
    _setup_logging(verbose)
    try:
        summary = run(jobs, RunOptions(out_dir, engine, device, fresh, max_batch))
    except BatchttsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo(f"batchtts: interrupted; finished chunks are kept. Resume with: batchtts run {jobs}", err=True)
        sys.exit(130)
    log.info(
        "%d jobs, %d chunks: %d reused, %d synthesised (%.1f s of audio, real-time factor %.3f), "
        "%d failed; %d files written, %d up to date; %.1f s",
        summary.jobs,
        summary.chunks,
        summary.reused,
        summary.synthesised,
        summary.audio_seconds,
        summary.real_time_factor,
        len(summary.failed),
        len(summary.written),
        len(summary.up_to_date),
        summary.wall_seconds,
    )
    if summary.failed:
        for key, error in summary.failed:
            click.echo(f"batchtts: failed chunk {key[:12]}: {error}", err=True)
        sys.exit(EXIT_CHUNKS_FAILED)


@main.command("status")
@JOBS
@OUT
@ENGINE
def status_cmd(jobs: Path, out_dir: Path | None, engine: str | None) -> None:
    """Chunks done and left per job, from the ledger."""
    _setup_logging(0)
    try:
        prep = prepare(jobs, out_dir, engine)
    except BatchttsError as exc:
        _fail(exc)
    db = state_dir(prep.out_dir) / "ledger.sqlite"
    ledger = Ledger(db) if db.exists() else None
    try:
        click.echo(f"{'job':<24} {'done':>6} {'left':>6} {'failed':>6}  output")
        for job in prep.jobs:
            keys = [c.key for c in prep.chunks[job.id]]
            done = ledger.done_chunks(keys) if ledger else {}
            failed = ledger.failed_keys(keys) if ledger else set()
            n_done = sum(k in done for k in keys)
            n_failed = sum(k in failed for k in keys)
            mark = "" if job.output.is_file() and n_done == len(keys) else " (not written)"
            click.echo(f"{job.id:<24} {n_done:>6} {len(keys) - n_done:>6} {n_failed:>6}  {job.output}{mark}")
    finally:
        if ledger:
            ledger.close()


@main.command("plan")
@JOBS
@OUT
@ENGINE
@DEVICE
@MAX_BATCH
@KV_BUDGET
@WASTE
@click.option("--all", "include_done", is_flag=True, help="Plan every chunk, not only those not yet done.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan_cmd(
    jobs: Path,
    out_dir: Path | None,
    engine: str | None,
    device: str,
    max_batch: int | None,
    kv_budget: int | None,
    waste_target: float,
    include_done: bool,
    as_json: bool,
) -> None:
    """Show how JOBS would be batched, without loading any model."""
    import json

    _setup_logging(0)
    try:
        prep = prepare(jobs, out_dir, engine)
        db = state_dir(prep.out_dir) / "ledger.sqlite"
        done: set[str] = set()
        if db.exists() and not include_done:
            ledger = Ledger(db)
            done = set(ledger.done_chunks(c.key for cs in prep.chunks.values() for c in cs))
            ledger.close()
        reports = []
        for name in dict.fromkeys(prep.engine_of.values()):
            cls = engine_class(name)
            cost = cls.cost_model()
            chunks = [c for j in prep.jobs if prep.engine_of[j.id] == name for c in prep.chunks[j.id]]
            pending = [c for c in chunks if c.key not in done]
            try:
                budget = memory_budget(device, cost, kv_budget)
            except (RuntimeError, AssertionError) as exc:
                raise EnvironmentProblem(f"cannot read free CUDA memory ({exc}); pass --kv-budget") from None
            limit = max_batch or _default_batch(cls)
            try:
                plan = plan_batches(
                    pending,
                    cost,
                    budget,
                    limit,
                    prefix_tokens(cls, cost, prep.voices),
                    waste_target=effective_waste_target(cls, waste_target),
                )
            except PlanError as exc:
                raise InputError(jobs, None, None, str(exc)) from None
            reports.append((name, cost, len({c.key for c in chunks}) - len({c.key for c in pending}), plan))
    except BatchttsError as exc:
        _fail(exc)
    if as_json:
        click.echo(
            json.dumps(
                [_plan_json(name, cost, skipped, plan) for name, cost, skipped, plan in reports],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for name, cost, skipped, plan in reports:
        _print_plan(name, cost, skipped, plan)


def _default_batch(cls) -> int:
    """The engine's preferred batch size, asked of the class (no weights are loaded by `plan`)."""
    probe = object.__new__(cls)
    try:
        return cls.default_batch_size(probe)
    except Exception:
        return 8


def _plan_json(name, cost, skipped, plan) -> dict:
    return {
        "engine": name,
        "already_done": skipped,
        "bytes_per_token": cost.bytes_per_token,
        **plan.summary(),
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
            for b in plan.batches
        ],
    }


def _print_plan(name, cost, skipped, plan) -> None:
    s = plan.summary()
    click.echo(
        f"engine {name}: {s['chunks']} chunks to synthesise ({skipped} already done), "
        f"budget {format_size(plan.budget_bytes)}, {format_size(cost.bytes_per_token)} per token, "
        f"at most {plan.max_batch} per batch"
    )
    click.echo(
        f"{'batch':>5} {'voice':<10} {'size':>4} {'tokens':>11} {'worst mem':>10} {'pred mem':>10} "
        f"{'waste':>6} {'steps':>6}"
    )
    for n, b in enumerate(plan.batches, 1):
        lengths = [i.length for i in b.items]
        click.echo(
            f"{n:>5} {b.voice[:10]:<10} {len(b.items):>4} {min(lengths):>5}-{max(lengths):<5} "
            f"{format_size(b.worst_bytes):>10} {format_size(b.predicted_bytes):>10} "
            f"{100 * b.padded_slots / b.useful_slots:>5.1f}% {b.decode_steps:>6}"
        )
    click.echo(f"bucket edges (tokens): {', '.join(map(str, s['bucket_edges'])) or '-'}")
    target = (
        f"target {100 * plan.waste_target:.0f}% per batch"
        if math.isfinite(plan.waste_target)
        else ("no target: this engine runs rows unpadded")
    )
    click.echo(
        f"padding waste {100 * s['padding_waste']:.1f}% ({target}); "
        f"peak worst-case memory {format_size(s['peak_worst_bytes'])} of {format_size(plan.budget_bytes)}"
    )
    click.echo(
        f"decode steps: {s['decode_steps']} batched vs {s['sequential_decode_steps']} one sentence at a time "
        f"({s['step_saving']}x fewer)"
    )


@main.command("waveform")
@click.argument("chapter", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Picture to write (default: beside the chapter, .png).",
)
@click.option("--seconds", type=click.FloatRange(min=1), default=None, help="Show only the first N seconds.")
def waveform_cmd(chapter: Path, png: Path | None, seconds: float | None) -> None:
    """Draw a chapter's waveform with its chunk boundaries and pauses (needs its .json timings)."""
    from batchtts.plot import waveform_png

    if not chapter.with_suffix(".json").is_file():
        _fail(InputError(chapter, None, None, "no timings beside it (.json); was it written by batchtts run?"))
    try:
        out = waveform_png(chapter, png or chapter.with_suffix(".png"), seconds)
    except BatchttsError as exc:
        _fail(exc)
    click.echo(str(out))
