"""How many decode slots a KV budget holds, and what continuous batching will take: no torch, no weights.

A slot holds one sentence from its first prompt token to its last allowed speech token, so its worst case
is the longest prompt plus the longest decode; slots x that x KV bytes per token never passes the budget,
so a run cannot run out of memory however the sentences end. `decode_plan` simulates the queue through
the slots (a sentence enters the first slot that frees, refills land on the host's checks) to predict
decode steps, and prices each step as the weights it reads plus the live rows' KV at a share of the
device's memory bandwidth. `batchtts plan` can print it without loading a model.

One capacity model, read by both the planner (`batchtts plan`, via `GlmttsEngine.decode_outlook`) and the
engine's `SlotDecoder` (via `GlmttsEngine.use_memory_budget`): the same budget in bytes gives the same slots
and slot length (`slot_capacity`), so the plan predicts exactly the slots a run uses. The budget itself is
planning/memory.py's (one CPU share, one CUDA margin); what is kept free beside it on CUDA (the activation
reserve: the largest refill prefill, measured once at load, plus `GRAPH_POOL_BYTES`) is the engine's.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

MAX_SLOTS = 64
SLOT_TOKENS = 4096  # the engine's slot: 30 s of rolling prompt speech, its text, and 20x a long sentence
PREFILL_TOKENS = 4096  # refill prompts go through the model in groups of at most this many tokens
GRAPH_POOL_BYTES = 512 << 20  # the captured steps' working memory (sampling over 64 x 32,769 logits and so on)
H100_BYTES_PER_S = 2.995e12  # a device-to-device copy measured on the GPU test machine (read + write)
EXPECTED_BOUND_FRACTION = 0.5  # the share of the bandwidth floor the graphed decode step is built to reach


@dataclass(frozen=True)
class Row:
    """One sentence as the planner sees it: tokens before decoding, and its predicted and worst decode."""

    prompt: int
    predicted: int
    worst: int


@dataclass(frozen=True)
class SlotCapacity:
    """What a KV budget buys the slot decoder: `slots` rows of `slot_tokens` each (prompt + decode)."""

    slots: int
    slot_tokens: int
    bytes_per_token: int

    @property
    def kv_bytes(self) -> int:
        return self.slots * self.slot_tokens * self.bytes_per_token


def slot_length(max_positions: int | None = None) -> int:
    """Tokens per slot: SLOT_TOKENS, or the model's maximum positions when fewer."""
    return min(SLOT_TOKENS, max_positions or SLOT_TOKENS)


def slot_capacity(budget: int, bytes_per_token: int, max_positions: int | None = None) -> SlotCapacity:
    """The slots the decoder allocates for `budget` bytes of KV cache (the one rule the planner and the
    decoder share); 0 slots when not even one fits."""
    length = slot_length(max_positions)
    return SlotCapacity(slots_for_budget(budget, bytes_per_token, length), length, bytes_per_token)


@dataclass(frozen=True)
class DecodePlan:
    slots: int
    slot_tokens: int  # each slot's worst-case length
    kv_bytes: int  # slots x slot_tokens x bytes per token: what the decoder allocates, <= the budget
    sentences: int
    speech_tokens: int  # predicted
    decode_steps: int  # predicted, with refills
    seconds: float | None  # predicted decode time, when a bandwidth is given

    def describe(self) -> str:
        time = f", about {self.seconds:.0f} s" if self.seconds is not None else ""
        return (
            f"{self.slots} decode slots of {self.slot_tokens} tokens ({self.kv_bytes / 2**30:.1f} GiB KV); "
            f"{self.sentences} sentences, {self.speech_tokens} speech tokens in about {self.decode_steps} "
            f"decode steps{time}"
        )


def default_config() -> dict:
    """GLM-TTS's published LLM config, shipped with the package (llm-config.md says where it comes from)."""
    return json.loads((Path(__file__).parent.parent / "llm-config.json").read_text(encoding="utf-8"))


def slots_for_budget(budget: int, bytes_per_token: int, slot_tokens: int, max_slots: int = MAX_SLOTS) -> int:
    """The most slots of `slot_tokens` whose KV fits `budget` (0 when not even one does)."""
    if slot_tokens <= 0 or bytes_per_token <= 0:
        raise ValueError("slot_tokens and bytes_per_token must be positive")
    return max(0, min(max_slots, budget // (slot_tokens * bytes_per_token)))


def decode_plan(
    rows: list[Row],
    bytes_per_token: int,
    budget: int,
    step_weight_bytes: int = 0,
    bandwidth: float | None = None,
    bound_fraction: float = EXPECTED_BOUND_FRACTION,
    max_slots: int = MAX_SLOTS,
    check_every: int = 8,
    slot_tokens: int | None = None,
) -> DecodePlan:
    """Slots, predicted decode steps and time of `rows` (in queue order) under a KV budget.

    slot_tokens defaults to the rows' own worst case (longest prompt + longest decode)."""
    length = slot_tokens or max((r.prompt + r.worst for r in rows), default=1)
    slots = slots_for_budget(budget, bytes_per_token, length, max_slots)
    if slots == 0:
        raise ValueError(f"a KV budget of {budget} bytes holds no slot of {length} tokens")
    free = [0] * slots  # step at which each slot frees
    kv_read = 0
    for r in rows:
        start = heapq.heappop(free)
        start = -(-start // check_every) * check_every  # refills happen when the host checks
        heapq.heappush(free, start + r.predicted)
        kv_read += (r.prompt * r.predicted + r.predicted * (r.predicted + 1) // 2) * bytes_per_token
    steps = max(free)
    seconds = None
    if bandwidth:
        seconds = (steps * step_weight_bytes + kv_read) / (bandwidth * bound_fraction)
    return DecodePlan(
        slots, length, slots * length * bytes_per_token, len(rows), sum(r.predicted for r in rows), steps, seconds
    )


def step_weight_bytes(config: dict, dtype_bytes: int, outputs: int = 32769) -> int:
    """Bytes of weights one decode step reads from a Llama config: the layers, the final norm and an output
    projection of `outputs` rows (GLM-TTS: 32,768 speech tokens + EOA), not the embedding table."""
    hidden, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    per_layer = hidden * (heads + 2 * kv_heads) * head_dim + heads * head_dim * hidden + 3 * hidden * inter
    return (layers * (per_layer + 2 * hidden) + hidden + outputs * hidden) * dtype_bytes


def engine_decode_plan(
    cost,
    sentences: list[tuple[int, int, str]],
    budget: int,
    bandwidth: float | None = H100_BYTES_PER_S,
    config: dict | None = None,
    dtype_bytes: int = 2,
) -> DecodePlan:
    """What the GLM-TTS engine's decoder will do with `sentences` = (prefix tokens, text tokens, language)
    in queue order, under `budget` bytes of KV: the engine's slots (`slot_capacity`), predicted lengths from
    the cost model (a `CostModel`), steps priced at the published config's weights (or `config`)."""
    config = config or default_config()
    rows = [
        Row(prefix + n, cost.predicted_decode(n, cost.speech_ratio.get(lang, 6.5)), cost.worst_decode(n))
        for prefix, n, lang in sentences
    ]
    return decode_plan(
        rows,
        cost.bytes_per_token,
        budget,
        step_weight_bytes=step_weight_bytes(config, dtype_bytes),
        bandwidth=bandwidth,
        slot_tokens=slot_length(config.get("max_position_embeddings")),
    )
