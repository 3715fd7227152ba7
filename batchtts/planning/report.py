"""What the read-only commands report: per-job progress (`status`) and the batching per engine (`plan`).

Plain dataclasses, built from a `Prepared` job file and the workspace's one answer to "is this chunk done".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchtts.engines.base import CostModel
from batchtts.planning.plan import Plan
from batchtts.planning.prepare import Prepared
from batchtts.state.workspace import Workspace


@dataclass(frozen=True)
class ChunkFailure:
    index: int  # the chunk's place in its job, from 0
    key: str  # its content key (SHA-256 hex)
    error: str  # the last attempt's error
    text: str  # the chunk's text as the job file gave it


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    output: Path
    chunks: int
    done: int
    failed: int
    written: bool  # the chapter file exists and every chunk is done
    failures: tuple[ChunkFailure, ...] = ()

    @property
    def left(self) -> int:
        return self.chunks - self.done


def job_status(prep: Prepared) -> list[JobStatus]:
    """Chunks done, left and failed per job, in job-file order; the ledger is only read."""
    space = Workspace(prep.out_dir)
    ledger = space.read_ledger()
    try:
        done = space.done(ledger, prep.all_chunks())
        failed = ledger.failures({c.key for c in prep.all_chunks()}) if ledger else {}
    finally:
        if ledger:
            ledger.close()
    report = []
    for job in prep.jobs:
        chunks = prep.chunks[job.id]
        n_done = sum(c.key in done for c in chunks)
        failures = tuple(ChunkFailure(c.index, c.key, failed[c.key], c.source_text) for c in chunks if c.key in failed)
        written = job.output.is_file() and n_done == len(chunks)
        report.append(JobStatus(job.id, job.output, len(chunks), n_done, len(failures), written, failures))
    return report


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
