"""Turn the planner's batches into a live queue: re-plan when decoded lengths drift from the estimate,
when an out-of-memory error lowered the ceiling, or when rolling-context sentences become ready."""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchtts.config import format_size
from batchtts.engines import engine_class
from batchtts.engines.base import CostModel, Engine
from batchtts.errors import InputError, PlanError
from batchtts.planning.plan import Batch, Item, LengthPredictor, Plan, batch_bytes, plan_batches
from batchtts.planning.prepare import Prepared
from batchtts.state.voice import VoiceAudio
from batchtts.text.chunks import Chunk

log = logging.getLogger("batchtts")


def prefix_tokens(
    engine_cls: type[Engine], cost: CostModel, voices: dict[str, VoiceAudio], chunks: list[Chunk]
) -> dict[str, int]:
    """Prompt tokens each voice adds to every sequence (none when the engine does not clone), with the
    engine's room for earlier sentences on rolling-context chunks; `plan` and `run` both size batches
    from this."""
    if not engine_cls.can_clone:
        prefix = {fp: cost.special_tokens for fp in voices}
    else:
        prefix = {fp: cost.prefix_tokens(v.duration, v.prompt_text) for fp, v in voices.items()}
    for voice in {c.voice for c in chunks if c.rolling}:
        prefix[voice] = prefix.get(voice, 0) + cost.context_tokens
    return prefix


def plan_engine(
    prep: Prepared,
    name: str,
    budget: int,
    max_batch: int | None,
    waste_target: float,
    chunks: list[Chunk] | None = None,
) -> Plan:
    """How one engine's chunks (default: all) would be batched; a chunk that cannot fit the budget alone
    is bad input, for `plan` and, before any synthesis, for `run`."""
    cls = engine_class(name)
    cost = cls.cost_model()
    chunks = prep.chunks_for(name) if chunks is None else chunks
    try:
        return plan_batches(
            chunks,
            cost,
            budget,
            max_batch or cls.default_batch_size(),
            prefix_tokens(cls, cost, prep.voices, chunks),
            waste_target=waste_target,
        )
    except PlanError as exc:
        raise InputError(prep.job_file, None, None, str(exc)) from None


class Scheduler:
    """Hands out batches for one engine's pending chunks."""

    REPLAN_DRIFT = 0.05

    def __init__(
        self,
        engine: Engine,
        pending: list[Chunk],
        voices: dict[str, VoiceAudio],
        budget: int,
        max_batch: int,
        waste_target: float,
        ready: Callable[[Chunk], bool] = lambda c: True,
        chains: bool = False,
    ):
        self.cost = engine.cost_model()
        self.pending = {c.key: c for c in pending}
        self.ready = ready  # a rolling-context sentence waits for the one before it
        self.chains = chains  # ... unless it can follow it in the same batch (the engine decodes chains)
        self.rolling = any(c.rolling for c in pending)
        self.prefix_of = prefix_tokens(type(engine), self.cost, voices, pending)
        self.predictor = LengthPredictor(self.cost)
        self.budget = budget
        self.max_batch = max_batch
        self.waste_target = waste_target
        self._planned_with: dict[str, float] = {}
        self.queue: list[Batch] = []

    def _chained(self) -> set[str]:
        """Keys of pending sentences that are ready, or follow a ready pending one (a chain, oldest first)."""
        out: set[str] = set()
        blocked: set[str] = set()
        for c in self.pending.values():
            walk = [c]
            seen = lambda k: k in out or k in blocked  # noqa: E731
            while not seen(walk[-1].key) and not self.ready(walk[-1]) and walk[-1].after in self.pending:
                walk.append(self.pending[walk[-1].after])
            last = walk[-1]
            (out if last.key in out or (last.key not in blocked and self.ready(last)) else blocked).update(
                x.key for x in walk
            )
        return out

    def _whole_chains(self, batch: Batch) -> Batch | None:
        """The batch less the sentences whose predecessor is neither done nor in it (they wait for a later one)."""
        keys, kept = {i.chunk.key for i in batch.items}, set()
        while True:
            more = {i.chunk.key for i in batch.items if self.ready(i.chunk) or i.chunk.after in kept} - kept
            if not more:
                break
            kept |= more & keys
        items = tuple(i for i in batch.items if i.chunk.key in kept)
        return self.sub_batch(batch, items) if items else None

    def _replan(self) -> None:
        chained = self._chained() if self.chains else set()
        plan = plan_batches(
            [c for c in self.pending.values() if c.key in chained or self.ready(c)],
            self.cost,
            self.budget,
            self.max_batch,
            self.prefix_of,
            self.predictor,
            self.waste_target,
        )
        self._planned_with = self.predictor.snapshot()
        self.queue = plan.batches
        if self.chains:
            self.queue = [b for b in map(self._whole_chains, plan.batches) if b is not None]
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
        worst, predicted = batch_bytes(self.cost, batch.prefix_tokens, items, self.budget)
        return Batch(batch.voice, tuple(items), batch.prefix_tokens, worst, predicted, batch.padding)
