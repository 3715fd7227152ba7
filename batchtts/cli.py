"""Command line: parses options, calls the library (batchtts.api), prints, and exits with its code."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import click

from batchtts import __version__, api
from batchtts.config import parse_size
from batchtts.errors import EXIT_CHUNKS_FAILED, BatchttsError, EnvironmentProblem

log = logging.getLogger("batchtts")


class Size(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


JOBS = click.argument("jobs", type=click.Path(path_type=Path))
OUT = click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: out/ beside the job file)."
)
ENGINE = click.option("--engine", default=None, help="Engine for jobs that name none (default: embedded).")
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
    default=api.DEFAULT_WASTE_TARGET,
    show_default=True,
    help="Most padding per batch, as a share of useful tokens.",
)
DEVICE = click.option("--device", type=click.Choice(get_args(api.Device)), default="cpu", show_default=True)
ABS = click.option("--allow-abs-paths", is_flag=True, help="Let jobs write outside the output folder.")
SYNTHESIS_OPTIONS = [
    DEVICE,
    MAX_BATCH,
    KV_BUDGET,
    WASTE,
    ABS,
    click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=2,
        show_default=True,
        help="New-seed attempts for a chunk whose synthesis fails or sounds wrong.",
    ),
    click.option("--fail-fast", is_flag=True, help="Stop at the first chunk that fails all its attempts."),
    click.option(
        "--log-json",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Append one JSON event per batch, chunk and job to this file.",
    ),
    click.option(
        "--executor",
        type=click.Choice(get_args(api.ExecutorKind)),
        default="local",
        show_default=True,
        help="Where engines run: this process, or actors on a Ray cluster.",
    ),
    click.option("--address", default=None, help="Ray cluster (auto, ray://host:port); default: a local one."),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Ray actors (default: one per GPU, or per CPU for the embedded engine).",
    ),
    click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True),
    click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug)."),
]


def _synthesis_options(fn: Callable) -> Callable:
    return functools.reduce(lambda f, option: option(f), reversed(SYNTHESIS_OPTIONS), fn)


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


def _call(fn: Callable, *args, **kwargs):
    """Call the library; a BatchttsError becomes one line on stderr and its exit code."""
    try:
        return fn(*args, **kwargs)
    except BatchttsError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # before a run takes over signals (checking inputs) or in a read-only command
        click.echo("batchtts: interrupted (SIGINT); finished chunks are kept", err=True)
        sys.exit(128 + signal.SIGINT)


@click.group()
@click.version_option(__version__)
def main() -> None:
    """Batch text-to-speech for long-form audio: chapters in, audiobook files out, resumable."""


def _report(jobs: Path, summary: api.RunSummary, strict: bool = False, out: Path | None = None) -> None:
    s, jobs = summary.as_dict(), f"{jobs} --out {out}" if out else jobs  # the hints name the folder it used
    log.info(
        "%d jobs, %d chunks: %d reused, %d synthesised in %d batches (%.2f h of audio, real-time factor "
        "%.3f), %d retried, %d failed; %d verified (%.1f s ASR), %d retaken, %d flagged; %d files written, "
        "%d up to date; %.1f s wall, peak memory %.0f MiB",
        s["jobs"],
        s["chunks"],
        s["reused"],
        s["synthesised"],
        s["batches"],
        s["audio_hours"],
        s["real_time_factor"],
        s["retried"],
        s["failed"],
        s["verified"],
        s["verify_seconds"],
        s["retaken"],
        s["flagged"],
        len(summary.written),
        len(summary.up_to_date),
        s["wall_seconds"],
        s["peak_rss_mib"],
    )
    for info in summary.chapters.values():
        if info["loudness_lufs"] is not None:
            log.info(
                "  %s: %.1f s, %.1f LUFS, true peak %.1f dBTP",
                info["output"],
                info["duration"],
                info["loudness_lufs"],
                info["true_peak_db"],
            )
    if summary.interrupted_by:
        name = signal.Signals(summary.interrupted_by).name
        click.echo(f"batchtts: stopped by {name}; finished chunks are kept. Resume with: batchtts run {jobs}", err=True)
        sys.exit(128 + summary.interrupted_by)
    if summary.failed:
        for key, error in summary.failed:
            click.echo(f"batchtts: failed chunk {key[:12]}: {error}", err=True)
        click.echo(
            f"batchtts: {len(summary.failed)} chunks failed; see `batchtts status {jobs}`, then "
            f"`batchtts retry {jobs}`",
            err=True,
        )
        sys.exit(EXIT_CHUNKS_FAILED)
    if summary.flagged:
        click.echo(
            f"batchtts: {len(summary.flagged)} chunks flagged (no take passed ASR verification; the best is kept); "
            f"listen with `batchtts review {jobs}`, redo with `batchtts retake {jobs} --job ID --chunk N`",
            err=True,
        )
        if strict:
            sys.exit(EXIT_CHUNKS_FAILED)


@main.command("run")
@JOBS
@OUT
@ENGINE
@click.option("--fresh", is_flag=True, help="Forget finished chunks and synthesise everything again.")
@click.option("--no-verify", "verify", flag_value=False, default=True, help="Check no take by speech recognition.")
@click.option("--strict", is_flag=True, help="Exit 1 when a chunk is flagged (no take passed verification).")
@_synthesis_options
def run_cmd(jobs: Path, verbose: int, strict: bool, **options) -> None:
    """Synthesise every job in JOBS and write its chapter file; finished work is never redone."""
    _setup_logging(verbose)
    _report(jobs, _call(api.run, jobs, **options), strict, options["out"])


@main.command("retry")
@JOBS
@OUT
@ENGINE
@_synthesis_options
def retry_cmd(jobs: Path, verbose: int, **options) -> None:
    """Synthesise again only the chunks that failed, with new seeds, and write what they complete."""
    _setup_logging(verbose)
    _report(jobs, _call(api.retry, jobs, **options), out=options["out"])


@main.command("status")
@JOBS
@OUT
@ENGINE
@ABS
@click.option("--json", "as_json", is_flag=True, help="Every job and chunk as JSON (README: status --json).")
def status_cmd(jobs: Path, as_json: bool, **options) -> None:
    """Chunks done, left, failed and flagged per job; failed and flagged chunks are listed."""
    _setup_logging(0)
    report = _call(api.status, jobs, **options)
    if as_json:
        click.echo(json.dumps({"jobs": [s.as_dict() for s in report]}, ensure_ascii=False, indent=1))
        return
    click.echo(f"{'job':<24} {'done':>6} {'left':>6} {'failed':>6} {'flagged':>7}  output")
    for s in report:
        mark = "" if s.written else " (not written)"
        click.echo(f"{s.job_id:<24} {s.done:>6} {s.left:>6} {s.failed:>6} {len(s.flagged):>7}  {s.output}{mark}")
    failures = [f"  {s.job_id}#{f.index} {f.key[:12]}: {f.error} | {f.text[:60]}" for s in report for f in s.failures]
    if failures:
        click.echo("failed chunks:\n" + "\n".join(failures))
    flagged = [
        f"  {s.job_id}#{c.index} {c.asr['metric']} {c.asr['error']:.2f} ({c.takes} takes): {c.text[:50]} | heard: "
        f"{c.asr['transcript'][:50]}"
        for s in report
        for c in s.flagged
    ]
    if flagged:
        click.echo("flagged chunks (no take passed verification; `batchtts review`):\n" + "\n".join(flagged))


@main.command("review")
@JOBS
@OUT
@ENGINE
@click.option("--all", "review_all", is_flag=True, help="Every chunk, not only the flagged ones.")
def review_cmd(jobs: Path, **options) -> None:
    """Write <out>/review.html: flagged takes to listen to, with what the recogniser heard."""
    click.echo(str(_call(api.review, jobs, **options)))


@main.command("retake")
@JOBS
@OUT
@ENGINE
@click.option("--job", required=True, help="Job id.")
@click.option("--chunk", "chunks", type=int, multiple=True, help="Chunk position (repeatable; see status --json).")
@click.option("--match", default=None, help="Every chunk of the job whose text contains this.")
def retake_cmd(jobs: Path, chunks: tuple[int, ...], **options) -> None:
    """Give chunks a new take; the next `batchtts run` synthesises only those and re-stitches their chapters."""
    for c in _call(api.retake, jobs, chunks=chunks, **options):
        click.echo(f"new take for {c.job_id}#{c.index}: {c.text[:70]}")


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
def plan_cmd(jobs: Path, as_json: bool, **options) -> None:
    """Show how JOBS would be batched, without loading any model."""
    _setup_logging(0)
    plans = _call(api.plan, jobs, **options)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in plans], indent=2, ensure_ascii=False))
        return
    for p in plans:
        click.echo("\n".join(p.describe()))


@main.command("chunks")
@JOBS
@OUT
@ENGINE
@ABS
@click.option("--json", "as_json", is_flag=True, help="One JSON object per chunk.")
def chunks_cmd(jobs: Path, as_json: bool, **options) -> None:
    """Every chunk as the engine will read it (numbers, names, cut points), without loading any model."""
    _setup_logging(0)
    for c in _call(api.chunks, jobs, **options):
        if as_json:
            row = {"job": c.job_id, "index": c.index, "key": c.key, "text": c.text, "break": c.brk}
            click.echo(json.dumps({**row, "source": c.source_text}, ensure_ascii=False))
        else:
            click.echo(f"{c.job_id}#{c.index:<4} {c.key[:12]} {c.brk:<9} {c.text}")


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
    click.echo(str(_call(api.waveform, chapter, png=png, seconds=seconds)))


@main.command("doctor")
@click.argument("jobs", type=click.Path(path_type=Path), required=False)
@OUT
@click.option("--engine", "engines", multiple=True, help="Engine to check (default: those JOBS use, else embedded).")
def doctor_cmd(jobs: Path | None, out: Path | None, engines: tuple[str, ...]) -> None:
    """Check programs, packages, device memory, model files and the output folder (exit 4 if any fails)."""
    checks = _call(api.doctor, jobs, out=out, engines=engines)
    for c in checks:
        click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<28} {c.detail}")
    bad = [c for c in checks if not c.ok]
    if bad:
        click.echo(f"batchtts: {len(bad)} problems found", err=True)
        sys.exit(EnvironmentProblem.exit_code)


@main.command("download")
@click.option("--repo", default="zai-org/GLM-TTS", show_default=True, help="Hub repository of the model.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit to pin.")
@click.option(
    "--local-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the model goes (default: models/<name>).",
)
@click.option("--endpoint", default=None, help="Hub or mirror URL (default: $HF_ENDPOINT, else the hub).")
@click.option("--max-workers", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--campplus-url", default=None, help="GLM-TTS's CAM++ model (default: pinned GitHub file; '' skips).")
def download_cmd(repo: str, **options) -> None:
    """Fetch model weights once (resumable, pinned, mirror-aware); a complete copy is reused offline."""
    _setup_logging(0)
    got = _call(api.download, repo, **options)
    for line in got.notes:
        click.echo(line)
    what = f"downloaded from {got.lock.endpoint}" if got.fetched else "complete copy reused, nothing fetched"
    click.echo(
        f"{repo}@{got.lock.commit[:12]} in {got.folder} ({len(got.lock.files)} files; {what}); "
        f"pinned in {got.lock_path}"
    )


@main.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o", "--jobs-out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Job file to write."
)
@click.option("--voice", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Narrator clip (3-10 s).")
@click.option("--voice-text", default=None, help="Transcript of the narrator clip.")
@click.option("--engine", default=None, help="Engine for every job (default: none named, so `run` decides).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(get_args(api.ImportFormat)),
    default="m4b",
    show_default=True,
    help="Chapter format; m4b: chapters in .m4a, and `run` joins them into one .m4b.",
)
@click.option(
    "--text-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the chapters' text goes (default: a folder named after the job file, beside it).",
)
@click.option(
    "--heading-level",
    type=click.IntRange(1, 6),
    default=None,
    help="Markdown: cut at headings of this level and above (default: the top level used twice).",
)
@click.option("--include-matter", is_flag=True, help="Keep front/back matter (contents, copyright, notes...).")
@click.option("--book", "book_title", default=None, help="Book title (default: from the source).")
@click.option("--author", default=None, help="Author (default: from the source).")
@click.option("--force", is_flag=True, help="Replace an existing job file.")
@click.option("--dry-run", is_flag=True, help="Print the table; write nothing.")
def import_cmd(source: Path, jobs_out: Path, dry_run: bool, **kw) -> None:
    """Turn an EPUB, a Markdown or text file, or a folder of them into a job file, one job per chapter."""
    report = _call(api.import_book, source, jobs_out, dry_run=dry_run, **kw)
    click.echo(report.table())
    if dry_run:
        click.echo("dry run: nothing written")
    else:
        click.echo(
            f"wrote {jobs_out} ({len(report.records)} jobs), texts in {report.text_dir}, "
            f"report {report.report_md}; next: batchtts run {jobs_out}"
        )
