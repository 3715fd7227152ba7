"""GLM-TTS sampling on the device: a counter-based RNG and RAS / top-k / top-p for a whole batch at once.

Every uniform is a hash of (chunk seed, decode step, draw) in 32-bit integer arithmetic carried in int64
tensors, with every product kept below 2**63: the same bits on a CPU and a GPU, with no generator state,
so a row draws the same numbers in any batch, slot or order, and a step never asks the host for one.
The sampler follows the official rules (top-k, then a nucleus under top-p, and a redraw from the whole
distribution when the pick repeats within the RAS window) with no data-dependent branch: every row
computes both draws and keeps the one its rule chooses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF
HISTORY = 16  # longest RAS window a sampler state holds (GLM-TTS uses 10)
DRAW_PICK, DRAW_REPEAT = 0, 1  # the two uniforms of a step


def _mul32(x, c: int):
    """(x * c) mod 2**32 for 0 <= x < 2**32, by 16-bit halves of c so no product passes 2**49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def _mix(x):
    """A 32-bit integer hash (Wellons' lowbias32); works on Python ints and int64 tensors alike."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform_bits(seed, step, draw):
    """24 random bits from (seed < 2**64, step < 2**32, draw): Python ints or int64 tensors (broadcast)."""
    x = _mix((seed & MASK32) ^ 0x9E3779B9)
    x = _mix(x ^ ((seed >> 32) & MASK32))
    x = _mix(x ^ (step & MASK32))
    x = _mix(x ^ draw)
    return x >> 8


def uniform(seed: torch.Tensor, step: torch.Tensor, draw: int) -> torch.Tensor:
    """Float32 uniforms in [0, 1), exact multiples of 2**-24, one per element of seed/step (int64)."""
    return uniform_bits(seed, step, draw).to(torch.float32) * (2.0**-24)


@dataclass
class RowParams:
    """Per-row sampling settings as device tensors (one entry per row or slot)."""

    temperature: torch.Tensor  # float32
    top_k: torch.Tensor  # int64
    top_p: torch.Tensor  # float32; +inf for plain top-k (no nucleus)
    ras: torch.Tensor  # bool: redraw on repetition
    greedy: torch.Tensor  # bool: argmax
    window: torch.Tensor  # int64, <= HISTORY
    repeat_min: torch.Tensor  # float32: window x tau_r, the count that triggers a redraw

    @classmethod
    def empty(cls, rows: int, device) -> RowParams:
        f = dict(device=device, dtype=torch.float32)
        i = dict(device=device, dtype=torch.long)
        return cls(
            torch.ones(rows, **f),
            torch.ones(rows, **i),
            torch.ones(rows, **f),
            torch.zeros(rows, dtype=torch.bool, device=device),
            torch.ones(rows, dtype=torch.bool, device=device),
            torch.ones(rows, **i),
            torch.ones(rows, **f),
        )

    @classmethod
    def of(cls, samplings, device) -> RowParams:
        """From `llm.Sampling` objects (host -> device copies only)."""
        for s in samplings:
            if not 1 <= s.window <= HISTORY:
                raise ValueError(f"RAS window {s.window}: must be 1..{HISTORY}")
        return cls(
            torch.tensor([s.temperature for s in samplings], dtype=torch.float32, device=device),
            torch.tensor([s.top_k for s in samplings], dtype=torch.long, device=device),
            torch.tensor([s.top_p if s.ras else float("inf") for s in samplings], dtype=torch.float32, device=device),
            torch.tensor([s.ras for s in samplings], dtype=torch.bool, device=device),
            torch.tensor([s.greedy for s in samplings], dtype=torch.bool, device=device),
            torch.tensor([s.window for s in samplings], dtype=torch.long, device=device),
            torch.tensor([s.window * s.tau_r for s in samplings], dtype=torch.float32, device=device),
        )

    def fields(self) -> tuple[str, ...]:
        return ("temperature", "top_k", "top_p", "ras", "greedy", "window", "repeat_min")

    def put(self, index: torch.Tensor, other: RowParams) -> None:
        """Copy `other`'s rows into rows `index` in place (static buffers stay where graphs captured them)."""
        for name in self.fields():
            getattr(self, name).index_copy_(0, index, getattr(other, name))

    def take(self, n: int) -> RowParams:
        return RowParams(*(getattr(self, name)[:n] for name in self.fields()))


def k_cap_for(samplings) -> int:
    """The top-k width a batch samples at: a power of two, at least 32, covering every row's top_k."""
    return max(32, 1 << (max(s.top_k for s in samplings) - 1).bit_length())


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per row, the index where the running sum of `weights` first exceeds u x their total."""
    running = weights.cumsum(-1)
    picks = torch.searchsorted(running, (u * running[:, -1])[:, None], right=True)[:, 0]
    return picks.clamp(max=weights.shape[-1] - 1)


def sample(
    logits: torch.Tensor,
    eoa_ok: torch.Tensor,
    p: RowParams,
    history: torch.Tensor,
    u_pick: torch.Tensor,
    u_repeat: torch.Tensor,
    k_cap: int,
) -> torch.Tensor:
    """One index per row into logits (rows, n_speech + 1), whose last column is EOA.

    eoa_ok (rows,) bars EOA before the minimum length; history (rows, HISTORY) holds each row's latest
    speech indices, newest last, -1 where empty; k_cap (a constant, >= every row's top_k) fixes the
    top-k width so the step's shapes never change.
    """
    eoa = logits.shape[-1] - 1
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, eoa] = torch.where(eoa_ok, logp[:, eoa], float("-inf"))
    probs = torch.softmax(logp / p.temperature[:, None], dim=-1)
    ranked, ids = probs.topk(min(k_cap, probs.shape[-1]), dim=-1)
    rank = torch.arange(ranked.shape[-1], device=logits.device)
    before = ranked.cumsum(-1) - ranked  # mass of the tokens ranked above each token
    keep = (rank < p.top_k[:, None]) & (before < p.top_p[:, None])
    pick = ids.gather(1, inverse_cdf(ranked * keep, u_pick)[:, None])[:, 0]
    col = torch.arange(history.shape[-1], device=logits.device)
    recent = col >= history.shape[-1] - p.window[:, None]
    repeats = ((history == pick[:, None]) & recent).sum(-1)
    redraw = p.ras & (repeats.float() >= p.repeat_min)
    chosen = torch.where(redraw, inverse_cdf(probs, u_repeat), pick)
    return torch.where(p.greedy, logp.argmax(-1), chosen)


def push_history(history: torch.Tensor, token: torch.Tensor, mask: torch.Tensor) -> None:
    """Append token (rows,) to each masked row's history in place (oldest falls off the front)."""
    shifted = torch.cat([history[:, 1:], token[:, None]], dim=1)
    history.copy_(torch.where(mask[:, None], shifted, history))
