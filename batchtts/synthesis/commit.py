"""The driver's side of synthesis: chunk audio to the store, then the ledger, then events and progress.

The same for local and Ray runs, so a chunk is committed exactly once whatever produced it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from batchtts.errors import FailFast
from batchtts.state.events import EventLog
from batchtts.state.ledger import Ledger, Verdict
from batchtts.state.store import ChunkStore, StoredAudio
from batchtts.synthesis.worker import BatchOutcome

log = logging.getLogger("batchtts")


@dataclass
class SynthStats:
    synthesized: int = 0
    batches: int = 0
    retried: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    audio_seconds: float = 0.0
    synth_seconds: float = 0.0
    verify_seconds: float = 0.0  # spent transcribing takes, mostly beside synth_seconds (verify/listen.py)
    verified: int = 0  # chunks whose kept take an ASR scored
    retaken: int = 0  # ... that took more than one take to pass or to be flagged
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (key, what was heard) for no take passed

    @property
    def real_time_factor(self) -> float:
        return self.synth_seconds / self.audio_seconds if self.audio_seconds else 0.0


class Committer:
    def __init__(
        self,
        name: str,
        total: int,
        ledger: Ledger,
        store: ChunkStore,
        run_id: int,
        events: EventLog,
        stats: SynthStats,
        done: set[str],
        on_progress: Callable[[set[str]], None],
        *,
        fail_fast: bool = False,
        progress: bool | None = None,  # None: only when stderr is a terminal
    ):
        self.name, self.ledger, self.store, self.run_id, self.events = name, ledger, store, run_id, events
        self.stats, self.done, self.on_progress, self.fail_fast = stats, done, on_progress, fail_fast
        self.bar = tqdm(
            total=total,
            unit="chunk",
            desc=f"synth[{name}]",
            file=sys.stderr,
            disable=None if progress is None else not progress,
        )

    def close(self) -> None:
        self.bar.close()

    def commit(self, outcome: BatchOutcome) -> None:
        for c in outcome.chunks:  # a rolling sentence's tokens are on disk before it counts as done
            result = outcome.results.get(c.key)
            if c.rolling and result and result.speech_tokens is not None:
                self.store.write_tokens(c.key, result.speech_tokens)
        stored = {k: self.store.write(k, r.audio, r.sample_rate) for k, r in outcome.results.items()}
        self.ledger.mark_done(self.run_id, stored, outcome.verdicts)
        for key, (error, tries) in outcome.errors.items():
            self.ledger.mark_failed(self.run_id, key, error, tries)
        self._account(outcome, stored)
        self.done.update(stored)
        self.bar.update(len(outcome.chunks))
        self.bar.set_postfix(audio=f"{self.stats.audio_seconds:.0f}s", rtf=f"{self.stats.real_time_factor:.3f}")
        self.on_progress(self.done)
        if outcome.errors and self.fail_fast:
            raise FailFast(
                f"stopping at the first failed chunk (--fail-fast): {next(iter(outcome.errors.values()))[0]}"
            )

    def _account(self, outcome: BatchOutcome, stored: dict[str, StoredAudio]) -> None:
        stats = self.stats
        audio = sum(s.duration for s in stored.values())
        stats.synth_seconds += outcome.seconds
        stats.verify_seconds += outcome.verify_seconds
        stats.synthesized += len(stored)
        stats.audio_seconds += audio
        stats.batches += 1
        stats.retried += len(outcome.retries)
        stats.failed += [(k, e) for k, (e, _) in outcome.errors.items()]
        verdicts = [(k, v) for k, v in outcome.verdicts.items() if k in stored]
        stats.verified += len(verdicts)
        stats.retaken += sum(v.takes > 1 for _, v in verdicts)
        stats.flagged += [(k, f"{v.metric} {v.error:.2f}, heard {v.transcript!r}") for k, v in verdicts if v.flagged]
        for c in outcome.chunks:
            v = outcome.verdicts.get(c.key)
            if v and v.flagged and c.key in stored:
                log.warning(
                    "chunk %s#%d flagged: no take of %d passed (best %s %.2f, heard %r); kept the best for review",
                    *(c.job_id, c.index, v.takes, v.metric.upper(), v.error, v.transcript[:80]),
                )
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
                    **_verified(outcome.verdicts.get(c.key)),
                )
            elif c.key in outcome.errors:
                error, tries = outcome.errors[c.key]
                self.events.emit(
                    "chunk", key=c.key, job=c.job_id, index=c.index, state="failed", error=error, attempts=tries
                )
                log.error("chunk %s#%d failed after %d attempts: %s", c.job_id, c.index, tries, error)


def _verified(v: Verdict | None) -> dict:
    """A chunk event's verification fields (none when the take was not verified)."""
    return {} if v is None else {"takes": v.takes, "flagged": v.flagged, "asr_error": v.error, "metric": v.metric}
