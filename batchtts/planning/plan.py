"""Pack pending chunks into length-bucketed batches that fit the device's memory budget.

Chunks with the same key are synthesised once; a batch never mixes voices (one voice state per
call). Within a voice, chunks are sorted by predicted length and cut into buckets so that no batch
drawn from a bucket pads more than the waste target. What pads depends on the engine
(`CostModel.padding`): rows that all run to the longest pad their whole length; rows that leave the
batch when done (GLM-TTS) pad only their left-padded prompt, so far wider buckets, fewer batches and
fewer decode steps stay under the same target. Each bucket is filled batch by batch while the
batch's worst-case footprint (every row padded to the longest prefix plus the longest possible
decode) stays within the budget.

A continuous-batching engine (`padding="queue"`, GLM-TTS) pads nothing and holds only as many rows at once
as its slots: for it the planner orders and groups a queue instead of pricing padded batches. Per voice,
one queue, longest predicted decode first (the longest-processing-time order, which keeps the last slots
from finishing alone), cut only by `max_batch`; a batch's bytes are the rows in flight at once (as many
as the budget holds, at most the batch) times one row's worst case. The engine's own slot model
(engines/glmtts/llm/capacity.py) turns the same budget into slots and predicted steps (`decode_outlook`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from batchtts.config import format_size
from batchtts.engines.base import CostModel
from batchtts.errors import PlanError
from batchtts.text.chunks import Chunk

DEFAULT_WASTE_TARGET = 0.2


@dataclass(frozen=True)
class Item:
    chunk: Chunk
    text_tokens: int
    predicted: int  # decoded units we expect
    worst: int  # decoded units at most

    @property
    def length(self) -> int:
        """The part of a row that varies between chunks of one voice (the prefix is shared)."""
        return self.text_tokens + self.predicted


def pad_extent(item: Item, padding: str) -> int:
    """The part of a row that is padded up to the batch's longest: all of it, its prompt text, or nothing."""
    return {"full": item.length, "prompt": item.text_tokens, "none": 0, "queue": 0}[padding]


@dataclass(frozen=True)
class Batch:
    voice: str
    items: tuple[Item, ...]
    prefix_tokens: int
    worst_bytes: int
    predicted_bytes: int
    padding: str = "full"

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(i.chunk for i in self.items)

    @property
    def useful_slots(self) -> int:
        return sum(i.length for i in self.items)

    @property
    def padded_slots(self) -> int:
        extents = [pad_extent(i, self.padding) for i in self.items]
        return len(extents) * max(extents) - sum(extents)

    @property
    def decode_steps(self) -> int:
        """A batch decodes until its longest member is done."""
        return max(i.predicted for i in self.items)


@dataclass
class Plan:
    batches: list[Batch]
    budget_bytes: int
    max_batch: int
    waste_target: float
    bucket_edges: list[int] = field(default_factory=list)  # lengths where a new bucket starts

    @property
    def padding_waste(self) -> float:
        useful = sum(b.useful_slots for b in self.batches)
        return sum(b.padded_slots for b in self.batches) / useful if useful else 0.0

    @property
    def decode_steps(self) -> int:
        return sum(b.decode_steps for b in self.batches)

    @property
    def sequential_steps(self) -> int:
        return sum(i.predicted for b in self.batches for i in b.items)

    def summary(self) -> dict:
        return {
            "batches": len(self.batches),
            "chunks": sum(len(b.items) for b in self.batches),
            "budget_bytes": self.budget_bytes,
            "max_batch": self.max_batch,
            "waste_target": self.waste_target if math.isfinite(self.waste_target) else None,
            "padding_waste": round(self.padding_waste, 4),
            "bucket_edges": self.bucket_edges,
            "decode_steps": self.decode_steps,
            "sequential_decode_steps": self.sequential_steps,
            "step_saving": round(self.sequential_steps / self.decode_steps, 2) if self.decode_steps else 0.0,
            "peak_worst_bytes": max((b.worst_bytes for b in self.batches), default=0),
        }


class LengthPredictor:
    """Decoded units per text token, per language: starts from the engine's estimate, then learns."""

    PRIOR_WEIGHT = 200  # text tokens' worth of confidence in the engine's estimate

    def __init__(self, cost: CostModel):
        self.cost = cost
        self._text: dict[str, float] = {}
        self._decoded: dict[str, float] = {}

    def ratio(self, language: str) -> float:
        prior = self.cost.speech_ratio.get(language, next(iter(self.cost.speech_ratio.values()), 5.0))
        text = self._text.get(language, 0.0)
        decoded = self._decoded.get(language, 0.0)
        return (prior * self.PRIOR_WEIGHT + decoded) / (self.PRIOR_WEIGHT + text)

    def observe(self, language: str, text_tokens: int, decoded: int) -> None:
        self._text[language] = self._text.get(language, 0.0) + text_tokens
        self._decoded[language] = self._decoded.get(language, 0.0) + decoded

    def snapshot(self) -> dict[str, float]:
        return {lang: self.ratio(lang) for lang in self.cost.speech_ratio}


def batch_bytes(
    cost: CostModel, prefix: int, items: list[Item] | tuple[Item, ...], budget: int | None = None
) -> tuple[int, int]:
    """(worst, predicted) bytes of a left-padded batch: every row as long as the longest row. For a queue
    (`cost.padding == "queue"`), only the rows in flight at once count: as many as `budget` holds (at
    least one, at most the batch)."""
    rows = len(items)
    text = max(i.text_tokens for i in items)
    row_worst = (prefix + text + max(i.worst for i in items)) * cost.bytes_per_token + cost.activation_bytes_per_seq
    row_predicted = (prefix + text + max(i.predicted for i in items)) * cost.bytes_per_token
    row_predicted += cost.activation_bytes_per_seq
    if cost.padding == "queue" and budget is not None:
        rows = max(1, min(rows, budget // row_worst))
    return rows * row_worst, rows * row_predicted


def plan_batches(
    chunks: list[Chunk],
    cost: CostModel,
    budget_bytes: int,
    max_batch: int,
    prefix_of: dict[str, int] | None = None,
    predictor: LengthPredictor | None = None,
    waste_target: float = DEFAULT_WASTE_TARGET,
) -> Plan:
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if cost.padding in ("none", "queue"):  # rows run unpadded: mixed lengths waste nothing, one bucket per voice
        waste_target = math.inf
    predictor = predictor or LengthPredictor(cost)
    prefix_of = prefix_of or {}
    unique: dict[str, Chunk] = {}
    for chunk in chunks:
        unique.setdefault(chunk.key, chunk)
    by_voice: dict[str, list[Item]] = {}
    for chunk in unique.values():
        n = cost.text_tokens(chunk.text, chunk.language)
        item = Item(chunk, n, cost.predicted_decode(n, predictor.ratio(chunk.language)), cost.worst_decode(n))
        by_voice.setdefault(chunk.voice, []).append(item)

    plan = Plan([], budget_bytes, max_batch, waste_target)
    for voice, items in by_voice.items():
        prefix = prefix_of.get(voice, cost.special_tokens)
        items.sort(key=lambda i: -i.length)  # stable: equal lengths keep book order
        for bucket in _buckets(items, waste_target, cost.padding):
            plan.bucket_edges.append(bucket[0].length)
            plan.batches.extend(_fill(bucket, voice, prefix, cost, budget_bytes, max_batch))
    return plan


def _buckets(items: list[Item], waste_target: float, padding: str) -> list[list[Item]]:
    """Cut the length-sorted items where padding could pass the target.

    A batch pads at most (longest extent - shortest extent) per row and holds at least the shortest
    length per row, so keeping that spread within target x shortest length bounds every batch drawn
    from the bucket, whichever rows it gets.
    """
    buckets: list[list[Item]] = []
    high = low = 0
    for item in items:
        e = pad_extent(item, padding)
        if buckets and max(high, e) - min(low, e) <= waste_target * item.length:
            buckets[-1].append(item)
            high, low = max(high, e), min(low, e)
        else:
            buckets.append([item])
            high = low = e
    return buckets


def _fill(bucket: list[Item], voice: str, prefix: int, cost: CostModel, budget: int, max_batch: int) -> list[Batch]:
    batches: list[Batch] = []
    current: list[Item] = []
    for item in bucket:
        need = batch_bytes(cost, prefix, [item], budget)[0]
        if need > budget:
            raise PlanError(
                f"chunk {item.chunk.job_id}#{item.chunk.index} needs up to {format_size(need)} but the budget is "
                f"{format_size(budget)}; raise --kv-budget or shorten its sentence"
            )
        if current and (len(current) == max_batch or batch_bytes(cost, prefix, [*current, item], budget)[0] > budget):
            batches.append(
                Batch(voice, tuple(current), prefix, *batch_bytes(cost, prefix, current, budget), cost.padding)
            )
            current = []
        current.append(item)
    if current:
        batches.append(Batch(voice, tuple(current), prefix, *batch_bytes(cost, prefix, current, budget), cost.padding))
    return batches
