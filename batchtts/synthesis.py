"""Run one engine over its pending chunks: plan, synthesise, check, retry, checkpoint.

Failure policy: a CUDA out-of-memory error splits the batch and lowers the ceiling; any other
engine error, or audio that fails the quality checks, sends the chunk back with a new seed, up to
`retries` times; after that it is marked failed and the run goes on (or stops, with `fail_fast`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from batchtts.chunks import Chunk, chunk_seed
from batchtts.engines import engine_class
from batchtts.engines.base import CostModel, Engine, SynthRequest, is_out_of_memory
from batchtts.errors import EXIT_CHUNKS_FAILED, BatchttsError
from batchtts.events import EventLog
from batchtts.ledger import Ledger
from batchtts.plan import (
    DEFAULT_WASTE_TARGET,
    Batch,
    Item,
    LengthPredictor,
    batch_bytes,
    format_size,
    memory_budget,
    plan_batches,
)
from batchtts.quality import check
from batchtts.store import ChunkStore, StoredAudio
from batchtts.voice import VoiceAudio, VoiceCache

log = logging.getLogger("batchtts")


@dataclass
class SynthSettings:
    device: str = "cpu"
    max_batch: int | None = None
    kv_budget: int | None = None
    waste_target: float = DEFAULT_WASTE_TARGET
    retries: int = 2  # new-seed attempts after the first, per chunk
    fail_fast: bool = False
    progress: bool | None = None  # None: only when stderr is a terminal


@dataclass
class SynthStats:
    synthesised: int = 0
    batches: int = 0
    retried: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    audio_seconds: float = 0.0
    synth_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        return self.synth_seconds / self.audio_seconds if self.audio_seconds else 0.0


class FailFast(BatchttsError):
    exit_code = EXIT_CHUNKS_FAILED


ROLLING_CONTEXT_TOKENS = 750 + 150  # GLM-TTS keeps at most 750 prompt speech tokens, plus their text


def prefix_tokens(
    engine_cls: type[Engine], cost: CostModel, voices: dict[str, VoiceAudio], chunks: list[Chunk]
) -> dict[str, int]:
    """Prompt tokens each voice adds to every sequence (none when the engine does not clone), with room
    for the earlier sentences of rolling-context chunks; `plan` and `run` both size batches from this."""
    if not engine_cls.can_clone:
        prefix = {fp: cost.special_tokens for fp in voices}
    else:
        prefix = {fp: cost.prefix_tokens(v.duration, v.prompt_text) for fp, v in voices.items()}
    for voice in {c.voice for c in chunks if c.rolling}:
        prefix[voice] = prefix.get(voice, 0) + ROLLING_CONTEXT_TOKENS
    return prefix


class Scheduler:
    """Hands out batches, re-planning when the length predictor has moved (decoded lengths differ from
    the engine's estimate) or when an out-of-memory error lowered the ceiling."""

    REPLAN_DRIFT = 0.05

    def __init__(
        self,
        engine: Engine,
        pending: list[Chunk],
        voices: dict[str, VoiceAudio],
        settings: SynthSettings,
        budget: int,
        ready: Callable[[Chunk], bool] = lambda c: True,
    ):
        self.cost = engine.cost_model()
        self.pending = {c.key: c for c in pending}
        self.ready = ready  # a rolling-context sentence waits for the one before it
        self.rolling = any(c.rolling for c in pending)
        self.prefix_of = prefix_tokens(type(engine), self.cost, voices, pending)
        self.predictor = LengthPredictor(self.cost)
        self.budget = budget
        self.max_batch = settings.max_batch or engine.default_batch_size()
        self.waste_target = settings.waste_target
        self._planned_with: dict[str, float] = {}
        self.queue: list[Batch] = []

    def _replan(self) -> None:
        plan = plan_batches(
            [c for c in self.pending.values() if self.ready(c)],
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
        """The next batch, or None when nothing pending can run (all done, or waiting on failed sentences)."""
        if not self.pending:
            return None
        if not self.queue or self._drifted() or self.rolling:  # rolling: each batch frees the next sentences
            self._replan()
        return self.queue.pop(0) if self.queue else None

    def finished(self, item: Item, tokens: int | None) -> None:
        self.pending.pop(item.chunk.key, None)
        if tokens is not None:
            self.predictor.observe(item.chunk.language, item.text_tokens, tokens)

    def out_of_memory(self, batch: Batch) -> None:
        """Never plan a batch this big again."""
        self.budget = min(self.budget, batch.worst_bytes - 1)
        self.max_batch = max(1, min(self.max_batch, len(batch.items) // 2))
        self.queue = []
        log.warning(
            "out of device memory on a batch of %d; lowering the ceiling to %d chunks / %s",
            len(batch.items),
            self.max_batch,
            format_size(self.budget),
        )

    def sub_batch(self, batch: Batch, items: tuple[Item, ...] | list[Item]) -> Batch:
        return Batch(
            batch.voice, tuple(items), batch.prefix_tokens, *batch_bytes(self.cost, batch.prefix_tokens, items)
        )


# audio, sample rate, decoded units, truncated, speech tokens (for rolling context)
Result = tuple[np.ndarray, int, int | None, bool, tuple[int, ...] | None]
MAX_CONTEXT_SENTENCES = 8  # the engine prunes further to its own token limit
History = dict[str, tuple[str | None, str, tuple[int, ...]]]  # key -> (key before, text, speech tokens)


@dataclass
class BatchOutcome:
    """What one batch produced; plain data, so it can travel back from a Ray actor."""

    chunks: tuple[Chunk, ...]
    results: dict[str, Result]
    errors: dict[str, tuple[str, int]]  # key -> (last error, attempts)
    retries: list[tuple[Chunk, str, int]]  # (chunk, error, attempt) for each re-seeded attempt
    seconds: float


class Worker:
    """An engine with its scheduler and failure policy: chunks in, audio out. Runs in the driver for a
    local run, or inside a Ray actor; it never touches the ledger or the outputs."""

    def __init__(
        self, name: str, settings: SynthSettings, voices: dict[str, VoiceAudio], cache: VoiceCache | None = None
    ):
        self.name, self.settings, self.voices, self.cache = name, settings, voices, cache
        self.engine = engine_class(name).load(settings.device)
        if not self.engine.can_clone and any(v.path for v in voices.values()):
            log.info(
                "engine '%s' cannot clone voices: the reference clips are recorded in the chunk keys but the "
                "engine's own voice is used",
                name,
            )
        cost = self.engine.cost_model()
        self.budget = memory_budget(
            settings.device, cost, settings.kv_budget, self.engine.activation_reserve(), weights_loaded=True
        )
        self.max_batch = settings.max_batch or self.engine.default_batch_size()
        self.states: dict[str, dict] = {}
        log.info(
            "engine '%s' ready: memory budget %s, at most %d chunks per batch",
            name,
            format_size(self.budget),
            self.max_batch,
        )

    def close(self) -> None:
        self.engine.close()

    def _state(self, voice_fp: str) -> dict:
        if voice_fp not in self.states:
            voice = self.voices[voice_fp]
            make = lambda: self.engine.prepare_voice(voice)  # noqa: E731
            self.states[voice_fp] = self.cache.get(self.name, voice, make) if self.cache else make()
        return self.states[voice_fp]

    def work(
        self,
        todo: list[Chunk],
        attempts_before: dict[str, int],
        stop: Callable[[], bool] = lambda: False,
        history: History | None = None,
    ) -> Iterator[BatchOutcome]:
        """`history`: rolling-context sentences already done, so the ones after them can be prompted."""
        history = dict(history or {})
        settings = SynthSettings(**{**self.settings.__dict__, "max_batch": self.max_batch})
        sched = Scheduler(
            self.engine, todo, self.voices, settings, self.budget, ready=lambda c: c.after is None or c.after in history
        )
        try:
            while not stop() and (batch := sched.next_batch()) is not None:
                t0 = time.monotonic()
                state = self._state(batch.voice)
                results, errors, retries = self._attempt(sched, batch, state, attempts_before, history)
                for item in batch.items:
                    c = item.chunk
                    sched.finished(item, results[c.key][2] if c.key in results else None)
                    if c.rolling and c.key in results and results[c.key][4] is not None:
                        history[c.key] = (c.after, c.text, results[c.key][4])
                yield BatchOutcome(batch.chunks, results, errors, retries, time.monotonic() - t0)
            if sched.pending and not stop():  # sentences whose predecessor failed can never be prompted
                blocked = tuple(sched.pending.values())
                why = ("the sentence before it failed, and rolling context needs it", 0)
                yield BatchOutcome(blocked, {}, {c.key: why for c in blocked}, [], 0.0)
        finally:  # an out-of-memory ceiling holds for the rest of the run
            self.budget, self.max_batch = sched.budget, sched.max_batch

    @staticmethod
    def _context(chunk: Chunk, history: History) -> tuple[tuple[str, tuple[int, ...]], ...]:
        entries = []
        key = chunk.after
        while key and key in history and len(entries) < MAX_CONTEXT_SENTENCES:
            key, text, tokens = history[key]
            entries.append((text, tokens))
        return tuple(reversed(entries))

    def _attempt(
        self, sched: Scheduler, batch: Batch, state: dict, attempts_before: dict[str, int], history: History
    ) -> tuple[dict[str, Result], dict[str, tuple[str, int]], list[tuple[Chunk, str, int]]]:
        """Synthesise a batch, re-seeding chunks whose audio fails the checks."""
        results: dict[str, Result] = {}
        errors: dict[str, tuple[str, int]] = {}
        retries: list[tuple[Chunk, str, int]] = []
        todo = list(batch.items)
        for attempt in range(self.settings.retries + 1):
            if not todo:
                break
            seeds = {i.chunk.key: chunk_seed(i.chunk.key, attempts_before.get(i.chunk.key, 0) + attempt) for i in todo}
            contexts = {i.chunk.key: self._context(i.chunk, history) for i in todo if i.chunk.rolling}
            raw = self._synth(sched, sched.sub_batch(batch, todo), state, seeds, contexts)
            again = []
            for item in todo:
                key = item.chunk.key
                outcome = raw[key]
                problem = (
                    outcome
                    if isinstance(outcome, str)
                    else check(item.chunk.text, item.chunk.language, outcome[0], outcome[1], outcome[3])
                )
                if problem is None:
                    results[key] = outcome
                    errors.pop(key, None)
                else:
                    errors[key] = (problem, attempt + 1)
                    again.append(item)
            if again and attempt < self.settings.retries:
                retries += [(item.chunk, errors[item.chunk.key][0], attempt + 1) for item in again]
            todo = again
        return results, errors, retries

    def _synth(
        self, sched: Scheduler, batch: Batch, state: dict, seeds: dict[str, int], contexts: dict[str, tuple]
    ) -> dict[str, Result | str]:
        """One engine call per batch; OOM splits it (and lowers the ceiling); other errors isolate the chunk."""
        reqs = [
            SynthRequest(c.key, c.text, c.language, seeds[c.key], c.options, contexts.get(c.key, ()))
            for c in batch.chunks
        ]
        try:
            out = self.engine.synthesize(reqs, state)
            return {
                r.key: (res.audio, res.sample_rate, res.tokens, res.truncated, res.speech_tokens)
                for r, res in zip(reqs, out, strict=True)
            }
        except BatchttsError:
            raise
        except Exception as exc:
            if len(reqs) == 1:
                return {reqs[0].key: f"{type(exc).__name__}: {exc}"}
            if is_out_of_memory(exc):
                sched.out_of_memory(batch)
                parts = [batch.items[: len(batch.items) // 2], batch.items[len(batch.items) // 2 :]]
            else:
                log.warning("batch of %d failed (%s); trying its chunks one at a time", len(reqs), exc)
                parts = [(item,) for item in batch.items]
        results: dict[str, Result | str] = {}
        while parts:
            part = parts.pop(0)
            if len(part) > sched.max_batch:  # the ceiling fell while a sibling ran: honour it before trying
                step = sched.max_batch
                parts[0:0] = [part[i : i + step] for i in range(0, len(part), step)]
                continue
            results.update(self._synth(sched, sched.sub_batch(batch, part), state, seeds, contexts))
        return results


class Committer:
    """The driver's side of synthesis: chunk audio to the store, then the ledger, then events and progress.
    The same for local and Ray runs, so a chunk is committed exactly once whatever produced it."""

    def __init__(
        self,
        name: str,
        total: int,
        settings: SynthSettings,
        ledger: Ledger,
        store: ChunkStore,
        run_id: int,
        events: EventLog,
        stats: SynthStats,
        done: set[str],
        on_progress: Callable[[set[str]], None],
    ):
        self.name, self.settings, self.ledger, self.store = name, settings, ledger, store
        self.run_id, self.events, self.stats, self.done, self.on_progress = run_id, events, stats, done, on_progress
        self.bar = tqdm(
            total=total,
            unit="chunk",
            desc=f"synth[{name}]",
            file=sys.stderr,
            disable=None if settings.progress is None else not settings.progress,
        )

    def close(self) -> None:
        self.bar.close()

    def commit(self, outcome: BatchOutcome) -> None:
        for c in outcome.chunks:  # a rolling sentence's tokens are on disk before it counts as done
            if c.rolling and c.key in outcome.results and outcome.results[c.key][4] is not None:
                self.store.write_tokens(c.key, outcome.results[c.key][4])
        stored = {k: self.store.write(k, r[0], r[1]) for k, r in outcome.results.items()}
        self.ledger.mark_done(self.run_id, stored)
        for key, (error, tries) in outcome.errors.items():
            self.ledger.mark_failed(self.run_id, key, error, tries)
        self._account(outcome, stored)
        self.done.update(stored)
        self.bar.update(len(outcome.chunks))
        self.bar.set_postfix(audio=f"{self.stats.audio_seconds:.0f}s", rtf=f"{self.stats.real_time_factor:.3f}")
        self.on_progress(self.done)
        if outcome.errors and self.settings.fail_fast:
            raise FailFast(
                f"stopping at the first failed chunk (--fail-fast): {next(iter(outcome.errors.values()))[0]}"
            )

    def _account(self, outcome: BatchOutcome, stored: dict[str, StoredAudio]) -> None:
        stats = self.stats
        audio = sum(s.duration for s in stored.values())
        stats.synth_seconds += outcome.seconds
        stats.synthesised += len(stored)
        stats.audio_seconds += audio
        stats.batches += 1
        stats.retried += len(outcome.retries)
        stats.failed += [(k, e) for k, (e, _) in outcome.errors.items()]
        for c, error, attempt in outcome.retries:
            log.warning("chunk %s#%d: %s; retrying with a new seed", c.job_id, c.index, error)
            self.events.emit(
                "chunk", key=c.key, job=c.job_id, index=c.index, state="retry", error=error, attempt=attempt
            )
        self.events.emit(
            "batch",
            engine=self.name,
            size=len(outcome.chunks),
            seconds=round(outcome.seconds, 4),
            audio_seconds=round(audio, 3),
        )
        for c in outcome.chunks:
            if c.key in stored:
                self.events.emit(
                    "chunk",
                    key=c.key,
                    job=c.job_id,
                    index=c.index,
                    state="done",
                    duration=round(stored[c.key].duration, 3),
                )
            elif c.key in outcome.errors:
                error, tries = outcome.errors[c.key]
                self.events.emit(
                    "chunk", key=c.key, job=c.job_id, index=c.index, state="failed", error=error, attempts=tries
                )
                log.error("chunk %s#%d failed after %d attempts: %s", c.job_id, c.index, tries, error)


def synthesise_locally(
    name: str,
    todo: list[Chunk],
    voices: dict[str, VoiceAudio],
    cache: VoiceCache,
    committer: Committer,
    attempts_before: dict[str, int],
    stop: Callable[[], bool],
    history: History | None = None,
) -> None:
    log.info("loading engine '%s' for %d chunks", name, len({c.key for c in todo}))
    worker = Worker(name, committer.settings, voices, cache)
    try:
        for outcome in worker.work(todo, attempts_before, stop, history):
            committer.commit(outcome)
    finally:
        worker.close()
