"""An engine with its scheduler and failure policy: chunks in, audio out.

Runs in the driver for a local run, or inside a Ray actor; it never touches the ledger or the
outputs. Failure policy: a CUDA out-of-memory error splits the batch and lowers the ceiling; any
other engine error, or audio that fails the quality checks, sends the chunk back with a new seed, up
to `retries` times; after that it is reported failed.

Verification (verify/stage.py): a take that passes the quality checks is transcribed and scored; one
above its threshold is taken again with a new seed, up to the job's `retakes`, and the best take (lowest
error) is kept. A chunk whose takes never pass is kept with its best take and flagged, not failed.
The ASR runs while the batch is still being made: an engine that `streams_results` reports each take as it
is done, and the verifier's listener (verify/listen.py) hears it at once: pocketsphinx in a child process,
Whisper on the engine's own reporting thread (GLM-TTS's audio worker); the attempt collects the scores when
the engine call returns. A reported take is used only if it is the take the call finally returned (an engine
error can throw a batch's takes away); any other is scored then. The scores, and so every retake and verdict,
are those of scoring each batch after it is made (BATCHTTS_VERIFY_SERIAL=1 does that, in this process).
"""

from __future__ import annotations

import itertools
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
from batchtts.state.ledger import Verdict
from batchtts.state.voice import VoiceAudio, VoiceCache
from batchtts.text.chunks import Chunk, chunk_seed
from batchtts.verify.quality import check
from batchtts.verify.stage import Plans, Score, Verifier

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
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # key -> what verification said of its kept take
    verify_seconds: float = 0.0  # spent transcribing takes, mostly beside synthesis (verify/listen.py)


class Worker:
    def __init__(
        self,
        name: str,
        settings: SynthSettings,
        voices: dict[str, VoiceAudio],
        cache: VoiceCache | None = None,
        verify: Plans | None = None,
    ):
        self.name, self.settings, self.voices, self.cache = name, settings, voices, cache
        self.engine = engine_class(name).load(settings.device, threads=settings.threads)
        self.verifier = Verifier(verify or {}, settings.device)
        self.verifier.load()  # before the budget is measured: an ASR model on the GPU is not the engine's room
        if not self.engine.can_clone and any(v.path for v in voices.values()):
            log.info(
                "engine '%s' cannot clone voices: the reference clips are recorded in the chunk keys but the "
                "engine's own voice is used",
                name,
            )
        self.cost = self.engine.cost_model()
        reserve = self.engine.activation_reserve() + self.verifier.batch_reserve_bytes()
        self.budget = memory_budget(settings.device, self.cost, settings.kv_budget, reserve, weights_loaded=True)
        self.engine.use_memory_budget(self.budget)  # the engine's own cache sizes from the planner's figure
        self.max_batch = settings.max_batch or self.engine.default_batch_size(settings.threads)
        self.states: dict[str, dict] = {}
        self._takes = itertools.count()  # listener keys, one per take heard
        log.info(
            "engine '%s' ready: memory budget %s, at most %d chunks per batch",
            name,
            format_size(self.budget),
            self.max_batch,
        )

    def close(self) -> None:
        self.verifier.close()
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
                t0, asr0 = time.monotonic(), self.verifier.seconds
                state = self._state(batch.voice)
                results, errors, retries, verdicts = self._attempt(sched, batch, state, attempts_before, history)
                if self.engine.supports_rolling_chains:  # chain sentences after a failed one wait, still pending
                    kept = [i for i in batch.items if i.chunk.key in results.keys() | errors]
                    batch = sched.sub_batch(batch, kept) if kept else replace(batch, items=())
                for item in batch.items:
                    c, result = item.chunk, results.get(item.chunk.key)
                    sched.finished(item, result.tokens if result else None)
                    if c.rolling and result and result.speech_tokens is not None:
                        history[c.key] = (c.after, c.text, result.speech_tokens)
                asr = self.verifier.seconds - asr0
                yield BatchOutcome(batch.chunks, results, errors, retries, time.monotonic() - t0, verdicts, asr)
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

    def _attempt(self, sched: Scheduler, batch: Batch, state: dict, attempts_before: dict[str, int], history: History):
        """Synthesize a batch, re-seeding chunks whose audio fails the checks or the verification.

        Returns (results, errors, retries, verdicts) as BatchOutcome holds them."""
        results: dict[str, SynthResult] = {}
        errors: dict[str, tuple[str, int]] = {}
        retries: list[tuple[Chunk, str, int]] = []
        best: dict[str, tuple[SynthResult, Score, int]] = {}  # key -> best verified take, its score, takes so far
        verdicts: dict[str, Verdict] = {}
        todo = list(batch.items)
        plans = {i.chunk.key: self.verifier.plan(i.chunk.job_id, i.chunk.language, i.chunk.text) for i in todo}
        most = max([self.settings.retries, *(p.retakes for p in plans.values() if p)])
        known = dict(history)  # with this batch's good rolling sentences, for the retries after them
        chunks = {i.chunk.key: i.chunk for i in todo}
        listener = self.verifier.listener() if any(plans.values()) else None
        for attempt in range(most + 1):
            if not todo:
                break
            seeds = {i.chunk.key: chunk_seed(i.chunk.key, attempts_before.get(i.chunk.key, 0) + attempt) for i in todo}
            contexts = {i.chunk.key: self._context(i.chunk, known) for i in todo if i.chunk.rolling}
            if self.engine.supports_rolling_chains:  # None: prompted by a predecessor decoded in the same call
                contexts |= {i.chunk.key: None for i in todo if i.chunk.after and i.chunk.after not in known}
            sent: dict[str, tuple[SynthResult, int]] = {}  # chunk key -> the take last submitted, its listener key
            failed: list[BaseException] = []
            hear = self._hearer(chunks, plans, sent, failed) if listener and self.engine.streams_results else None
            raw = self._synthesize(sched, sched.sub_batch(batch, todo), state, seeds, contexts, hear)
            if failed:
                raise failed[0]
            again, heard = [], []
            for item in todo:
                c, outcome = item.chunk, raw[item.chunk.key]
                problem = (
                    outcome
                    if isinstance(outcome, str)
                    else check(c.text, c.language, outcome.audio, outcome.sample_rate, outcome.truncated)
                )
                key = c.key
                if problem is not None:
                    errors[key] = (problem, attempt + 1)
                    again.append(item)
                elif plans[key] is None:
                    results[key] = outcome
                    errors.pop(key, None)
                    if c.rolling and outcome.speech_tokens is not None:
                        known[key] = (c.after, c.text, outcome.speech_tokens)
                else:
                    heard.append(item)
            takes = []  # a reported take counts only if it is the one the engine call returned in the end
            for key in (i.chunk.key for i in heard):
                c, take, (reported, token) = chunks[key], raw[key], sent.get(key, (None, -1))
                token = token if reported is take else next(self._takes)
                takes.append((token, plans[key], c.text, c.language, take.audio, take.sample_rate))
            got = listener.collect(takes) if takes else {}
            scores = [got[t[0]] for t in takes]
            for item, score in zip(heard, scores, strict=True):
                key = item.chunk.key
                errors.pop(key, None)
                if key not in best or score.error < best[key][1].error:
                    best[key] = (raw[key], score, attempt + 1)
                if score.passed:  # a passing take is this attempt's and the best: the others all failed
                    results[key] = best[key][0]
                    verdicts[key] = _verdict(best[key][1], attempt + 1, flagged=False)
                    if item.chunk.rolling and raw[key].speech_tokens is not None:
                        known[key] = (item.chunk.after, item.chunk.text, raw[key].speech_tokens)
                else:
                    errors[key] = (
                        f"heard {score.transcript[:60]!r}: {score.metric.upper()} {score.error:.2f}",
                        attempt + 1,
                    )
                    again.append(item)
            limit = {i.chunk.key: plans[i.chunk.key].retakes if i.chunk.key in best else self.settings.retries
                     for i in again}  # fmt: skip
            again = [i for i in again if attempt < limit[i.chunk.key]]
            for item in todo:  # out of takes: the best verified one is kept, flagged
                key = item.chunk.key
                if key not in results and key in best and item not in again:
                    take, score, _ = best[key]
                    results[key], verdicts[key] = take, _verdict(score, attempt + 1, flagged=True)
                    errors.pop(key, None)
                    if item.chunk.rolling and take is raw[key] and take.speech_tokens is not None:
                        known[key] = (item.chunk.after, item.chunk.text, take.speech_tokens)
            for item in _unfounded(todo, raw, contexts, known):  # prompted by a sentence that failed: not decided
                for held in (results, errors, known, verdicts, best):
                    held.pop(item.chunk.key, None)
                if item in again:
                    again.remove(item)
            retries += [(item.chunk, errors[item.chunk.key][0], attempt + 1) for item in again]
            todo = again
        return results, errors, retries, verdicts

    def _hearer(self, chunks: dict[str, Chunk], plans: dict, sent: dict, failed: list) -> Callable | None:
        """The engine's report hook (called from any thread): its takes that pass the quality checks and have a
        plan go to the listener, each recorded in `sent` (chunk key -> (take, listener key)); an error is put in
        `failed`, to be raised on the worker's thread, never in the engine's. None when verification is serial."""
        if self.verifier.serial:
            return None
        listener = self.verifier.listener()

        def hear(done: list[tuple[str, SynthResult]]) -> None:
            try:
                takes = []
                for key, take in done:
                    c, plan = chunks[key], plans[key]
                    if plan and check(c.text, c.language, take.audio, take.sample_rate, take.truncated) is None:
                        sent[key] = (take, next(self._takes))
                        takes.append((sent[key][1], plan, c.text, c.language, take.audio, take.sample_rate))
                listener.submit(takes)
            except BaseException as exc:  # noqa: BLE001 - raised by the worker
                failed.append(exc)

        return hear

    def _synthesize(
        self,
        sched: Scheduler,
        batch: Batch,
        state: dict,
        seeds: dict[str, int],
        contexts: dict[str, tuple | None],
        hear: Callable[[list[tuple[str, SynthResult]]], None] | None = None,
    ) -> dict[str, SynthResult | str]:
        """One engine call per batch; OOM splits it (and lowers the ceiling); other errors isolate the chunk.
        A context of None: the chunk follows its predecessor in the same call (a chain; UNFOUNDED without it).
        `hear`: given (chunk key, take) pairs as the engine reports them, from any of its calls (a failed call's
        too: the caller keeps only takes it returned)."""
        keys = {c.key for c in batch.chunks}
        follows = {c.key: c.after for c in batch.chunks if c.key in contexts and contexts[c.key] is None}
        if any(contexts.get(c.key, ()) is None and c.after not in keys for c in batch.chunks):  # a chain was split
            chained = [i for i in batch.items if contexts.get(i.chunk.key, ()) is not None or i.chunk.after in keys]
            out = dict.fromkeys((c.key for c in batch.chunks), UNFOUNDED)
            if chained:
                out |= self._synthesize(sched, sched.sub_batch(batch, chained), state, seeds, contexts, hear)
            return out
        reqs = [
            SynthRequest(
                c.key, c.text, c.language, seeds[c.key], c.options, contexts.get(c.key) or (), follows.get(c.key)
            )
            for c in batch.chunks
        ]
        try:
            if hear is None:
                made = self.engine.synthesize(reqs, state)
            else:
                made = self.engine.synthesize(reqs, state, on_results=lambda d: hear([(reqs[i].key, r) for i, r in d]))
            return {r.key: res for r, res in zip(reqs, made, strict=True)}
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
            results.update(self._synthesize(sched, sched.sub_batch(batch, part), state, seeds, contexts, hear))
        return results


def _verdict(score: Score, takes: int, flagged: bool) -> Verdict:
    return Verdict(score.backend, score.metric, score.error, score.transcript, takes, flagged)


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
