"""Command line: `batchtts run`, `batchtts status`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from batchtts import __version__
from batchtts.errors import EXIT_CHUNKS_FAILED, BatchttsError
from batchtts.ledger import Ledger
from batchtts.runner import RunOptions, prepare, run, state_dir

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
