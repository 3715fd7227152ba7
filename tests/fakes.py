"""Deterministic engine doubles for scheduler and ledger tests (never the default engine).

No fake keeps state on its class: what an engine did is recorded in a `ToneLog`, and the `tone` fixture
(tests/conftest.py) gives every test a fresh log with a fresh engine class bound to it (`ToneEngine.bound`).
An engine loaded with no log bound (a subprocess, the base class) records into a log of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from batchtts.engines.base import CostModel, Engine, SynthRequest, SynthResult, VoiceState

#: Seconds a test waits for a subprocess or a condition before it fails: a guard against hangs only, far
#: beyond what any run here takes on a loaded 2-core machine. No test asserts how fast anything is.
HANG_GUARD_S = 1800


@dataclass
class ToneLog:
    """What one test's fake engines did, and what they must fail on."""

    calls: list[list[str]] = field(default_factory=list)  # keys of each synthesize call, in order
    contexts: dict[str, tuple] = field(default_factory=dict)  # key -> the rolling context it was prompted with
    fail_texts: set[str] = field(default_factory=set)  # chunk texts whose synthesis raises


class ToneEngine(Engine):
    """Each chunk becomes a tone whose pitch comes from its key and whose length from its text."""

    name = "tone"
    max_chars = 120
    option_defaults: ClassVar[dict[str, float]] = {"speed": 1.0}
    sample_rate = 8000
    supports_rolling_context = True
    speaks = False  # tones: ASR verification does not apply
    log: ClassVar[ToneLog | None] = None  # set only on the per-test subclasses `bound` makes

    def __init__(self) -> None:
        self.record = type(self).log if type(self).log is not None else ToneLog()

    @classmethod
    def bound(cls, log: ToneLog, **attributes) -> type[ToneEngine]:
        """A fresh subclass (same `name`) whose instances record into `log`; `attributes` override class values."""
        return type(cls.__name__, (cls,), {"log": log, **attributes})

    @classmethod
    def revision(cls) -> str:
        return "tone-1"

    @classmethod
    def load(cls, device: str = "cpu", threads: int | None = None) -> ToneEngine:
        return cls()

    @classmethod
    def cost_model(cls) -> CostModel:
        return CostModel(
            bytes_per_token=1024,
            speech_ratio={"en": 4.0, "zh": 6.0},
            special_tokens=2,
            prompt_tokens_per_second=25.0,
            context_tokens=900,
        )

    @classmethod
    def default_batch_size(cls, threads: int | None = None) -> int:
        return 4

    def synthesize(self, requests: list[SynthRequest], voice: VoiceState) -> list[SynthResult]:
        self.record.calls.append([r.key for r in requests])
        self.record.contexts.update({r.key: r.context for r in requests})
        out = []
        for r in requests:
            if r.text in self.record.fail_texts:
                raise RuntimeError(f"cannot say {r.text!r}")
            per_char = 0.2 if r.language == "zh" else 0.06  # a syllable or ~16 letters a second
            n = int(self.sample_rate * per_char * len(r.text) / r.options["speed"])
            freq = 200 + int(hashlib.sha256(r.key.encode()).hexdigest()[:4], 16) % 400
            t = np.arange(n) / self.sample_rate
            noise = np.random.default_rng(r.seed).normal(0, 0.01, n)
            audio = (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)
            speech = tuple(int(c, 16) for c in r.key[:8])  # "decoded tokens", for rolling context
            out.append(SynthResult(audio, self.sample_rate, tokens=3 * len(r.text), speech_tokens=speech))
        return out
