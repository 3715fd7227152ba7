"""An engine with its scheduler and failure policy: chunks in, audio out.

Runs in the driver for a local run, or inside a Ray actor; it never touches the ledger or the
outputs. Failure policy: a CUDA out-of-memory error splits the batch and lowers the ceiling; any
other engine error, or audio that fails the quality checks, sends the chunk back with a new seed, up
to `retries` times; after that it is reported failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from batchtts.config import format_size
from batchtts.engines import engine_class
from batchtts.engines.base import SynthRequest, SynthResult, is_out_of_memory
from batchtts.errors import BatchttsError
from batchtts.planning.memory import memory_budget
from batchtts.planning.plan import DEFAULT_WASTE_TARGET, Batch
from batchtts.planning.schedule import Scheduler
from batchtts.state.voice import VoiceAudio, VoiceCache
from batchtts.text.chunks import Chunk, chunk_seed
from batchtts.verify.quality import check

log = logging.getLogger("batchtts")

History = dict[str, tuple[str | None, str, tuple[int, ...]]]  # key -> (key before, text, speech tokens)


@dataclass(frozen=True)
class SynthSettings:
    """How a worker synthesizes: where, how big its batches may grow, how often a chunk is retried."""

    device: str = "cpu"
    max_batch: int | None = None
    kv_budget: int | None = None  # bytes; None: measured from the device
    waste_target: float = DEFAULT_WASTE_TARGET
    retries: int = 2  # new-seed attempts after the first, per chunk
    threads: int | None = None  # CPU threads for the engine; None: every core


@dataclass
class BatchOutcome:
    """What one batch produced; plain data, so it can travel back from a Ray actor."""

    chunks: tuple[Chunk, ...]
    results: dict[str, SynthResult]
    errors: dict[str, tuple[str, int]]  # key -> (last error, attempts)
    retries: list[tuple[Chunk, str, int]] = field(default_factory=list)  # (chunk, error, attempt) per re-seed
    seconds: float = 0.0


class Worker:
    def __init__(
        self, name: str, settings: SynthSettings, voices: dict[str, VoiceAudio], cache: VoiceCache | None = None
    ):
        self.name, self.settings, self.voices, self.cache = name, settings, voices, cache
        self.engine = engine_class(name).load(settings.device, threads=settings.threads)
        if not self.engine.can_clone and any(v.path for v in voices.values()):
            log.info(
                "engine '%s' cannot clone voices: the reference clips are recorded in the chunk keys but the "
                "engine's own voice is used",
                name,
            )
        self.cost = self.engine.cost_model()
        self.budget = memory_budget(
            settings.device, self.cost, settings.kv_budget, self.engine.activation_reserve(), weights_loaded=True
        )
        self.engine.use_memory_budget(self.budget)  # the engine's own cache sizes from the planner's figure
        self.max_batch = settings.max_batch or self.engine.default_batch_size(settings.threads)
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
            name = self.name + self.engine.voice_key(voice)  # model and frontend revision: a change re-prepares
            self.states[voice_fp] = self.cache.get(name, voice, make) if self.cache else make()
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
        sched = Scheduler(
            self.engine,
            todo,
            self.voices,
            self.budget,
            self.max_batch,
            self.settings.waste_target,
            ready=lambda c: c.after is None or c.after in history,
            chains=self.engine.supports_rolling_chains,
        )
        try:
            while not stop() and (batch := sched.next_batch()) is not None:
                t0 = time.monotonic()
                state = self._state(batch.voice)
                results, errors, retries = self._attempt(sched, batch, state, attempts_before, history)
                if self.engine.supports_rolling_chains:  # chain sentences after a failed one wait, still pending
                    kept = [i for i in batch.items if i.chunk.key in results.keys() | errors]
                    batch = sched.sub_batch(batch, kept) if kept else replace(batch, items=())
                for item in batch.items:
                    c, result = item.chunk, results.get(item.chunk.key)
                    sched.finished(item, result.tokens if result else None)
                    if c.rolling and result and result.speech_tokens is not None:
                        history[c.key] = (c.after, c.text, result.speech_tokens)
                yield BatchOutcome(batch.chunks, results, errors, retries, time.monotonic() - t0)
            if sched.pending and not stop():  # sentences whose predecessor failed can never be prompted
                blocked = tuple(sched.pending.values())
                why = ("the sentence before it failed, and rolling context needs it", 0)
                yield BatchOutcome(blocked, {}, {c.key: why for c in blocked})
        finally:  # an out-of-memory ceiling holds for the rest of the run
            self.budget, self.max_batch = sched.budget, sched.max_batch

    def _context(self, chunk: Chunk, history: History) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Earlier sentences, newest first back to the engine's context budget (the engine prunes exactly)."""
        entries: list[tuple[str, tuple[int, ...]]] = []
        key, room = chunk.after, self.cost.context_tokens
        while key and key in history and room > 0:
            key, text, tokens = history[key]
            entries.append((text, tokens))
            room -= len(tokens)
        return tuple(reversed(entries))

    def _attempt(
        self, sched: Scheduler, batch: Batch, state: dict, attempts_before: dict[str, int], history: History
    ) -> tuple[dict[str, SynthResult], dict[str, tuple[str, int]], list[tuple[Chunk, str, int]]]:
        """Synthesize a batch, re-seeding chunks whose audio fails the checks."""
        results: dict[str, SynthResult] = {}
        errors: dict[str, tuple[str, int]] = {}
        retries: list[tuple[Chunk, str, int]] = []
        todo = list(batch.items)
        known = dict(history)  # with this batch's good rolling sentences, for the retries after them
        for attempt in range(self.settings.retries + 1):
            if not todo:
                break
            seeds = {i.chunk.key: chunk_seed(i.chunk.key, attempts_before.get(i.chunk.key, 0) + attempt) for i in todo}
            contexts = {i.chunk.key: self._context(i.chunk, known) for i in todo if i.chunk.rolling}
            if self.engine.supports_rolling_chains:  # None: prompted by a predecessor decoded in the same call
                contexts |= {i.chunk.key: None for i in todo if i.chunk.after and i.chunk.after not in known}
            raw = self._synthesize(sched, sched.sub_batch(batch, todo), state, seeds, contexts)
            again = []
            for item in todo:
                c, outcome = item.chunk, raw[item.chunk.key]
                problem = (
                    outcome
                    if isinstance(outcome, str)
                    else check(c.text, c.language, outcome.audio, outcome.sample_rate, outcome.truncated)
                )
                key = c.key
                if problem is None:
                    results[key] = outcome
                    errors.pop(key, None)
                    if c.rolling and outcome.speech_tokens is not None:
                        known[key] = (c.after, c.text, outcome.speech_tokens)
                else:
                    errors[key] = (problem, attempt + 1)
                    again.append(item)
            for item in _unfounded(todo, raw, contexts, known):  # prompted by a sentence that failed: not decided
                for held in (results, errors, known):
                    held.pop(item.chunk.key, None)
                if item in again:
                    again.remove(item)
            if again and attempt < self.settings.retries:
                retries += [(item.chunk, errors[item.chunk.key][0], attempt + 1) for item in again]
            todo = again
        return results, errors, retries

    def _synthesize(
        self, sched: Scheduler, batch: Batch, state: dict, seeds: dict[str, int], contexts: dict[str, tuple | None]
    ) -> dict[str, SynthResult | str]:
        """One engine call per batch; OOM splits it (and lowers the ceiling); other errors isolate the chunk.
        A context of None: the chunk follows its predecessor in the same call (a chain; UNFOUNDED without it)."""
        keys = {c.key for c in batch.chunks}
        follows = {c.key: c.after for c in batch.chunks if c.key in contexts and contexts[c.key] is None}
        if any(contexts.get(c.key, ()) is None and c.after not in keys for c in batch.chunks):  # a chain was split
            chained = [i for i in batch.items if contexts.get(i.chunk.key, ()) is not None or i.chunk.after in keys]
            out = dict.fromkeys((c.key for c in batch.chunks), UNFOUNDED)
            if chained:
                out |= self._synthesize(sched, sched.sub_batch(batch, chained), state, seeds, contexts)
            return out
        reqs = [
            SynthRequest(
                c.key, c.text, c.language, seeds[c.key], c.options, contexts.get(c.key) or (), follows.get(c.key)
            )
            for c in batch.chunks
        ]
        try:
            return {r.key: res for r, res in zip(reqs, self.engine.synthesize(reqs, state), strict=True)}
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
        results: dict[str, SynthResult | str] = {}
        while parts:
            part = parts.pop(0)
            if len(part) > sched.max_batch:  # the ceiling fell while a sibling ran: honour it before trying
                step = sched.max_batch
                parts[0:0] = [part[i : i + step] for i in range(0, len(part), step)]
                continue
            results.update(self._synthesize(sched, sched.sub_batch(batch, part), state, seeds, contexts))
        return results


UNFOUNDED = "its rolling-context predecessor was not decoded in the same call"


def _unfounded(todo: list, raw: dict, contexts: dict, known: History) -> list:
    """Chain sentences whose predecessor did not pass in this batch (or was never decoded with them): their
    tokens came from a prompt that will change, so they stay pending for a later batch."""
    out: list = []
    while True:
        more = [
            i
            for i in todo
            if i not in out
            and (raw[i.chunk.key] is UNFOUNDED or contexts.get(i.chunk.key, ()) is None and i.chunk.after not in known)
        ]
        if not more:
            return out
        out += more
        for i in more:
            known.pop(i.chunk.key, None)
