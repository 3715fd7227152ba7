"""What `plan` reports: the batching (or decode queue) per engine, and which chunks need no synthesis.

Plain dataclasses, built from a `Prepared` job file and the workspace's one answer to "is this chunk done"
(per-job progress, `status`, is synthesis/status.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from batchtts.config import format_size
from batchtts.engines.base import CostModel
from batchtts.planning.plan import Plan
from batchtts.planning.prepare import Prepared
from batchtts.state.workspace import Workspace


def done_keys(prep: Prepared) -> set[str]:
    """Keys of the chunks that need no synthesis (the same answer `run` acts on)."""
    space = Workspace(prep.out_dir)
    ledger = space.read_ledger()
    try:
        return space.done(ledger, prep.all_chunks())
    finally:
        if ledger:
            ledger.close()


@dataclass(frozen=True)
class EnginePlan:
    engine: str
    cost: CostModel
    already_done: int  # distinct chunks needing no synthesis
    plan: Plan
    outlook: dict | None = None  # the engine's own view (GLM-TTS: decode slots, steps, time), if it has one

    def as_dict(self) -> dict:
        """The plan as `batchtts plan --json` prints it."""
        return {
            "engine": self.engine,
            "already_done": self.already_done,
            "bytes_per_token": self.cost.bytes_per_token,
            **self.plan.summary(),
            **({"decode": self.outlook} if self.outlook else {}),
            "batches": [
                {
                    "voice": b.voice,
                    "size": len(b.items),
                    "chunks": [f"{i.chunk.job_id}#{i.chunk.index}" for i in b.items],
                    "text_tokens": [i.text_tokens for i in b.items],
                    "predicted_decode": [i.predicted for i in b.items],
                    "worst_decode": [i.worst for i in b.items],
                    "worst_bytes": b.worst_bytes,
                    "predicted_bytes": b.predicted_bytes,
                    "padding_waste": round(b.padded_slots / b.useful_slots, 4),
                    "decode_steps": b.decode_steps,
                }
                for b in self.plan.batches
            ],
        }

    def describe(self) -> list[str]:
        """The plan as `batchtts plan` prints it, one line per item."""
        p, out = self, []
        plan, s = p.plan, p.plan.summary()
        out.append(
            f"engine {p.engine}: {s['chunks']} chunks to synthesise ({p.already_done} already done), "
            f"budget {format_size(plan.budget_bytes)}, {format_size(p.cost.bytes_per_token)} per token, "
            f"at most {plan.max_batch} per batch"
        )
        out.append(
            f"{'batch':>5} {'voice':<10} {'size':>4} {'tokens':>11} {'worst mem':>10} {'pred mem':>10} "
            f"{'waste':>6} {'steps':>6}"
        )
        for n, b in enumerate(plan.batches, 1):
            lengths = [i.length for i in b.items]
            out.append(
                f"{n:>5} {b.voice[:10]:<10} {len(b.items):>4} {min(lengths):>5}-{max(lengths):<5} "
                f"{format_size(b.worst_bytes):>10} {format_size(b.predicted_bytes):>10} "
                f"{100 * b.padded_slots / b.useful_slots:>5.1f}% {b.decode_steps:>6}"
            )
        out.append(f"bucket edges (tokens): {', '.join(map(str, s['bucket_edges'])) or '-'}")
        target = (
            f"target {100 * plan.waste_target:.0f}% per batch"
            if math.isfinite(plan.waste_target)
            else ("no target: this engine runs rows unpadded")
        )
        out.append(
            f"padding waste {100 * s['padding_waste']:.1f}% ({target}); "
            f"peak worst-case memory {format_size(s['peak_worst_bytes'])} of {format_size(plan.budget_bytes)}"
        )
        out.append(
            f"decode steps: {s['decode_steps']} batched vs {s['sequential_decode_steps']} one sentence at a time "
            f"({s['step_saving']}x fewer)"
        )
        if p.outlook:
            out.append(f"engine's decoder: {p.outlook['summary']}")
        return out
