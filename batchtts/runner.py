"""Drive a job file through split, plan, synthesis, ledger and stitch; the engine is a black box here."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from batchtts.atomic import atomic_path, remove_stale_temps
from batchtts.book import BookChapter, book_signature, book_slug, write_book, write_playlist
from batchtts.chunks import Chunk, make_chunks
from batchtts.encode import Tags, write_audio
from batchtts.engines import DEFAULT_ENGINE, engine_class
from batchtts.engines.base import CostModel, Engine, OptionError, SynthRequest, is_out_of_memory
from batchtts.errors import BatchttsError
from batchtts.jobs import Job, default_out_dir, load_jobs
from batchtts.ledger import Ledger
from batchtts.lock import OutputLock
from batchtts.plan import (
    DEFAULT_WASTE_TARGET,
    Batch,
    LengthPredictor,
    batch_bytes,
    effective_waste_target,
    format_size,
    memory_budget,
    plan_batches,
)
from batchtts.split import split_text
from batchtts.stitch import Piece, build_chapter, signature
from batchtts.store import ChunkStore
from batchtts.subtitles import write_timings
from batchtts.voice import VoiceAudio, VoiceCache, load_voice

log = logging.getLogger("batchtts")
STATE_DIR = ".batchtts"


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


@dataclass
class Prepared:
    """Jobs with their chunks, keyed and validated; nothing loaded, nothing written."""

    job_file: Path
    out_dir: Path
    jobs: list[Job]
    engine_of: dict[str, str]  # job id -> engine name
    chunks: dict[str, list[Chunk]]  # job id -> chunks in reading order
    voices: dict[str, VoiceAudio]  # fingerprint -> voice


@dataclass
class RunSummary:
    jobs: int = 0
    chunks: int = 0
    reused: int = 0
    synthesised: int = 0
    batches: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    audio_seconds: float = 0.0
    synth_seconds: float = 0.0
    wall_seconds: float = 0.0
    written: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    chapters: dict[str, dict] = field(default_factory=dict)  # job id -> duration and loudness

    @property
    def real_time_factor(self) -> float:
        return self.synth_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "jobs": self.jobs,
            "chunks": self.chunks,
            "reused": self.reused,
            "synthesised": self.synthesised,
            "failed": len(self.failed),
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "real_time_factor": round(self.real_time_factor, 4),
            "written": self.written,
            "chapters": self.chapters,
        }


def state_dir(out_dir: Path) -> Path:
    return out_dir / STATE_DIR


def prepare(job_file: Path, out_dir: Path | None = None, default_engine: str | None = None) -> Prepared:
    job_file = Path(job_file)
    out_dir = Path(out_dir).resolve() if out_dir else default_out_dir(job_file)
    jobs = load_jobs(job_file, out_dir)
    voices_by_path: dict[tuple[Path | None, str], VoiceAudio] = {}
    engine_of, chunks = {}, {}
    for job in jobs:
        name = job.engine or default_engine or DEFAULT_ENGINE
        try:
            cls = engine_class(name)
        except KeyError:
            raise job.source.error("engine", f"unknown engine '{name}'") from None
        try:
            options = cls.resolve_options(job.sampling)
        except OptionError as exc:
            raise job.source.error("sampling", str(exc)) from None
        key = (job.voice.prompt_audio, job.voice.prompt_text)
        if key not in voices_by_path:
            voices_by_path[key] = load_voice(job.voice.prompt_audio, job.voice.prompt_text)
        voice = voices_by_path[key]
        segments = split_text(job.text, cls.max_chars)
        engine_of[job.id] = name
        chunks[job.id] = make_chunks(job, segments, voice.fingerprint, name, cls.revision(), options)
    voices = {v.fingerprint: v for v in voices_by_path.values()}
    return Prepared(job_file, out_dir, jobs, engine_of, chunks, voices)


def run(job_file: Path, opts: RunOptions) -> RunSummary:
    started = time.monotonic()
    out_dir = Path(opts.out_dir).resolve() if opts.out_dir else default_out_dir(Path(job_file))
    prep = prepare(job_file, out_dir, opts.engine)  # every input error surfaces here, before any work
    with OutputLock(state_dir(out_dir)):
        if opts.fresh:
            for sub in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
                (state_dir(out_dir) / sub).unlink(missing_ok=True)
            shutil.rmtree(state_dir(out_dir) / "chunks", ignore_errors=True)
        stale = remove_stale_temps(state_dir(out_dir), recursive=True)
        stale += sum(remove_stale_temps(folder) for folder in {job.output.parent for job in prep.jobs})
        if stale:
            log.info("removed %d temporary files left by an interrupted run", stale)
        ledger = Ledger(state_dir(out_dir) / "ledger.sqlite")
        try:
            summary = _run(prep, opts, ledger)
        finally:
            ledger.close()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _run(prep: Prepared, opts: RunOptions, ledger: Ledger) -> RunSummary:
    store = ChunkStore(state_dir(prep.out_dir) / "chunks")
    summary = RunSummary(jobs=len(prep.jobs))
    run_id = ledger.start_run(prep.job_file)
    for job in prep.jobs:
        ledger.set_layout(
            job.id, prep.job_file, job.output, [(c.index, c.key, c.source_text, c.brk) for c in prep.chunks[job.id]]
        )
    all_keys = {c.key for cs in prep.chunks.values() for c in cs}
    summary.chunks = sum(len(cs) for cs in prep.chunks.values())
    done = {k for k, d in ledger.done_chunks(all_keys).items() if store.intact(k, d.nbytes, d.sha256)}
    summary.reused = sum(1 for cs in prep.chunks.values() for c in cs if c.key in done)

    pending_jobs = {j.id for j in prep.jobs}
    _stitch_ready(prep, ledger, store, done, pending_jobs, summary)
    todo_keys = all_keys - done
    if not todo_keys:
        log.info("all %d chunks already synthesised; no synthesis needed", summary.chunks)
    for name in dict.fromkeys(prep.engine_of.values()):
        todo = [c for j in prep.jobs if prep.engine_of[j.id] == name for c in prep.chunks[j.id] if c.key in todo_keys]
        if todo:
            _synthesise(name, todo, prep, opts, ledger, store, run_id, done, pending_jobs, summary)
    _write_books(prep, ledger, summary)
    status = "failed" if summary.failed else "done"
    ledger.finish_run(run_id, status, summary.as_dict())
    return summary


def prefix_tokens(engine_cls: type[Engine], cost: CostModel, voices: dict[str, VoiceAudio]) -> dict[str, int]:
    """Prompt tokens each voice adds to every sequence (none when the engine does not clone)."""
    if not engine_cls.can_clone:
        return {fp: cost.special_tokens for fp in voices}
    return {fp: cost.prefix_tokens(v.duration, v.prompt_text) for fp, v in voices.items()}


class _Scheduler:
    """Runs one engine's pending chunks batch by batch, re-planning as it learns.

    The plan is redrawn when the length predictor has moved (decoded lengths differ from the
    engine's estimate) or when an out-of-memory error lowered the budget ceiling.
    """

    REPLAN_DRIFT = 0.05

    def __init__(self, engine: Engine, pending: list[Chunk], prep: Prepared, opts: RunOptions, budget: int):
        self.engine = engine
        self.cost = engine.cost_model()
        self.pending = {c.key: c for c in pending}
        self.prefix_of = prefix_tokens(type(engine), self.cost, prep.voices)
        self.predictor = LengthPredictor(self.cost)
        self.budget = budget
        self.max_batch = opts.max_batch or engine.default_batch_size()
        self.waste_target = effective_waste_target(type(engine), opts.waste_target)
        self._planned_with: dict[str, float] = {}
        self.queue: list[Batch] = []

    def _replan(self) -> None:
        plan = plan_batches(
            list(self.pending.values()),
            self.cost,
            self.budget,
            self.max_batch,
            self.prefix_of,
            self.predictor,
            self.waste_target,
        )
        self._planned_with = self.predictor.snapshot()
        self.queue = plan.batches
        log.debug(
            "planned %d batches (padding waste %.1f%%, %.1fx fewer decode steps than one at a time)",
            len(plan.batches),
            100 * plan.padding_waste,
            plan.sequential_steps / max(1, plan.decode_steps),
        )

    def _drifted(self) -> bool:
        now = self.predictor.snapshot()
        return any(abs(now[k] - v) > self.REPLAN_DRIFT * v for k, v in self._planned_with.items())

    def next_batch(self) -> Batch | None:
        if not self.pending:
            return None
        if not self.queue or self._drifted():
            self._replan()
        return self.queue.pop(0)

    def finished(self, batch: Batch, results: dict[str, tuple[np.ndarray, int, int | None]]) -> None:
        for item in batch.items:
            self.pending.pop(item.chunk.key, None)
            tokens = results.get(item.chunk.key, (None, None, None))[2]
            if tokens is not None:
                self.predictor.observe(item.chunk.language, item.text_tokens, tokens)

    def out_of_memory(self, batch: Batch) -> None:
        """Never plan a batch this big again, then retry its chunks in halves."""
        self.budget = min(self.budget, batch.worst_bytes - 1)
        self.max_batch = max(1, min(self.max_batch, len(batch.items) // 2))
        self.queue = []
        log.warning(
            "out of device memory on a batch of %d; lowering the ceiling to %d chunks / %s",
            len(batch.items),
            self.max_batch,
            format_size(self.budget),
        )


def _synthesise(
    name: str,
    todo: list[Chunk],
    prep: Prepared,
    opts: RunOptions,
    ledger: Ledger,
    store: ChunkStore,
    run_id: int,
    done: set[str],
    pending_jobs: set[str],
    summary: RunSummary,
) -> None:
    log.info("loading engine '%s' for %d chunks", name, len({c.key for c in todo}))
    engine = engine_class(name).load(opts.device)
    try:
        if not engine.can_clone and any(v.path for v in prep.voices.values()):
            log.info(
                "engine '%s' cannot clone voices: the reference clips are recorded in the chunk "
                "keys but the engine's own voice is used",
                name,
            )
        cost = engine.cost_model()
        budget = memory_budget(opts.device, cost, opts.kv_budget, engine.activation_reserve(), weights_loaded=True)
        sched = _Scheduler(engine, todo, prep, opts, budget)
        log.info("memory budget %s, at most %d chunks per batch", format_size(budget), sched.max_batch)
        cache = VoiceCache(state_dir(prep.out_dir) / "voices")
        states: dict[str, dict] = {}
        bar = tqdm(
            total=len(sched.pending),
            unit="chunk",
            desc=f"synth[{name}]",
            disable=(None if opts.progress is None else not opts.progress),
            file=sys.stderr,
        )
        with bar:
            while (batch := sched.next_batch()) is not None:
                if batch.voice not in states:
                    voice = prep.voices[batch.voice]
                    states[batch.voice] = cache.get(name, voice, lambda v=voice: engine.prepare_voice(v))
                t0 = time.monotonic()
                results = _synth_batch(engine, sched, batch, states[batch.voice], summary)
                stored = {k: store.write(k, audio, rate) for k, (audio, rate, _) in results.items()}
                ledger.mark_done(run_id, stored)
                for key, error in summary.failed:
                    if key not in stored and any(c.key == key for c in batch.chunks):
                        ledger.mark_failed(run_id, key, error)
                sched.finished(batch, results)
                summary.synth_seconds += time.monotonic() - t0
                summary.synthesised += len(stored)
                summary.audio_seconds += sum(s.duration for s in stored.values())
                summary.batches += 1
                done.update(stored)
                bar.update(len(batch.items))
                bar.set_postfix(audio=f"{summary.audio_seconds:.0f}s", rtf=f"{summary.real_time_factor:.3f}")
                _stitch_ready(prep, ledger, store, done, pending_jobs, summary)
    finally:
        engine.close()


def _synth_batch(
    engine: Engine, sched: _Scheduler, batch: Batch, state: dict, summary: RunSummary
) -> dict[str, tuple[np.ndarray, int, int | None]]:
    """Synthesise a batch. Out of memory: split it in two and lower the ceiling. Other errors: retry its
    chunks one by one so one bad chunk spares the rest."""
    reqs = [SynthRequest(c.key, c.text, c.language, c.seed, c.options) for c in batch.chunks]
    try:
        results = engine.synthesize(reqs, state)
        return {r.key: (res.audio, res.sample_rate, res.tokens) for r, res in zip(reqs, results, strict=True)}
    except BatchttsError:
        raise
    except Exception as exc:
        if len(reqs) == 1:
            log.error(
                "chunk %s (%s#%d) failed: %s", reqs[0].key[:12], batch.chunks[0].job_id, batch.chunks[0].index, exc
            )
            summary.failed.append((reqs[0].key, f"{type(exc).__name__}: {exc}"))
            return {}
        if is_out_of_memory(exc):
            sched.out_of_memory(batch)
            halves = [batch.items[: len(batch.items) // 2], batch.items[len(batch.items) // 2 :]]
        else:
            log.warning("batch of %d failed (%s); retrying its chunks one at a time", len(reqs), exc)
            halves = [(item,) for item in batch.items]
    out = {}
    while halves:
        part = halves.pop(0)
        if len(part) > sched.max_batch:  # the ceiling fell while its sibling ran: honour it before trying
            step = sched.max_batch
            halves[0:0] = [part[i : i + step] for i in range(0, len(part), step)]
            continue
        sub = Batch(batch.voice, tuple(part), batch.prefix_tokens, *batch_bytes(sched.cost, batch.prefix_tokens, part))
        out.update(_synth_batch(engine, sched, sub, state, summary))
    return out


def _stitch_ready(
    prep: Prepared, ledger: Ledger, store: ChunkStore, done: set[str], pending: set[str], summary: RunSummary
) -> None:
    """Write every chapter whose chunks are all done, unless its file is already what it would write."""
    for job in prep.jobs:
        if job.id not in pending or any(c.key not in done for c in prep.chunks[job.id]):
            continue
        pending.discard(job.id)
        chunks = prep.chunks[job.id]
        audios = [store.read(c.key) for c in chunks]
        rate = job.sample_rate or (audios[0][1] if audios else 22050)
        lead = chunks[0].pause_before if chunks else None
        sig = signature(
            [c.key for c in chunks],
            [(c.brk, c.pause) for c in chunks],
            job.pauses,
            lead,
            job.loudness,
            rate,
            job.output.suffix,
            job_tags(job),
        )
        pcm = chapter_pcm(prep.out_dir, job.id)
        if job.output.is_file() and pcm.is_file() and ledger.stitched_signature(job.id) == sig:
            summary.up_to_date.append(str(job.output))
            continue
        pieces = [Piece(a, r, c.brk, c.source_text, c.key, c.pause) for (a, r), c in zip(audios, chunks, strict=True)]
        chapter = build_chapter(pieces, rate, job.pauses, job.loudness, lead)
        write_audio(job.output, chapter.audio, rate, job_tags(job))
        with atomic_path(pcm) as tmp:
            sf.write(str(tmp), chapter.audio, rate, format="FLAC", subtype="PCM_24")
        info = {
            "job": job.id,
            "title": job.title,
            "output": job.output.name,
            "duration": round(chapter.duration, 4),
            "loudness_lufs": chapter.loudness and round(chapter.loudness.integrated_lufs, 2),
            "true_peak_db": chapter.loudness and round(chapter.loudness.true_peak_db, 2),
        }
        write_timings(job.output, chapter.cues, info)
        ledger.mark_stitched(job.id, sig)
        summary.written.append(str(job.output))
        summary.chapters[job.id] = info
        level = (
            f"{chapter.loudness.integrated_lufs:.1f} LUFS, true peak {chapter.loudness.true_peak_db:.1f} dBTP"
            if chapter.loudness
            else "loudness left as synthesised"
        )
        log.info("wrote %s (%.1f s, %s)", job.output, chapter.duration, level)


def job_tags(job: Job) -> Tags:
    language = None if job.language == "auto" else job.language
    return Tags(job.title or job.id, job.author, job.book, job.track, language, job.cover)


def chapter_pcm(out_dir: Path, job_id: str) -> Path:
    return state_dir(out_dir) / "chapters" / f"{job_id}.flac"


def _write_books(prep: Prepared, ledger: Ledger, summary: RunSummary) -> None:
    """One m4b and one playlist per `book`, once every chapter of it has been written."""
    books: dict[str, list[Job]] = {}
    for job in prep.jobs:
        if job.book:
            books.setdefault(job.book, []).append(job)
    for book, jobs in books.items():
        jobs = sorted(jobs, key=lambda j: (j.track is None, j.track or 0))
        sigs = [ledger.stitched_signature(j.id) for j in jobs]
        if any(
            sig is None or not j.output.is_file() or not chapter_pcm(prep.out_dir, j.id).is_file()
            for sig, j in zip(sigs, jobs, strict=True)
        ):
            log.info("book '%s' waits for all its chapters", book)
            continue
        chapters = [
            BookChapter(j.title or j.id, j.output, chapter_pcm(prep.out_dir, j.id), sig)
            for j, sig in zip(jobs, sigs, strict=True)
        ]
        cover = next((j.cover for j in jobs if j.cover), None)
        tags = Tags(book, jobs[0].author, book, None, None, cover)
        m4b = prep.out_dir / f"{book_slug(book)}.m4b"
        m3u = m4b.with_suffix(".m3u")
        sig = book_signature(chapters, tags)
        if m4b.is_file() and m3u.is_file() and ledger.book_signature(book) == sig:
            continue
        marks = write_book(m4b, chapters, tags)
        write_playlist(m3u, chapters, marks)
        ledger.mark_book(book, sig)
        summary.written.append(str(m4b))
        log.info("wrote %s: %d chapters, %.1f min", m4b, len(marks), marks[-1].end / 60)
