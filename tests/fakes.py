"""A deterministic engine double for scheduler and ledger tests (never the default engine)."""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np

from batchtts.engines.base import CostModel, Engine, SynthRequest, SynthResult, VoiceState


class ToneEngine(Engine):
    """Each chunk becomes a tone whose pitch comes from its key and whose length from its text."""

    name = "tone"
    max_chars = 120
    option_defaults: ClassVar[dict[str, float]] = {"speed": 1.0}
    sample_rate = 8000
    supports_rolling_context = True
    speaks = False  # tones: ASR verification does not apply
    calls: ClassVar[list[list[str]]] = []  # keys of each synthesize call, for assertions
    contexts: ClassVar[dict[str, tuple]] = {}  # key -> the rolling context it was prompted with
    fail_texts: ClassVar[set[str]] = set()

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
        ToneEngine.calls.append([r.key for r in requests])
        ToneEngine.contexts.update({r.key: r.context for r in requests})
        out = []
        for r in requests:
            if r.text in self.fail_texts:
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
