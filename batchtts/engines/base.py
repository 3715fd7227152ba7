"""The one small interface every engine implements; the runner knows nothing else about engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from batchtts.voice import VoiceAudio

VoiceState = dict[str, np.ndarray]


@dataclass(frozen=True)
class SynthRequest:
    key: str  # the chunk's content key
    text: str
    language: str  # "en" or "zh"
    seed: int  # derived from the key, so a chunk's audio never depends on its batch
    options: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthResult:
    audio: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int


class OptionError(ValueError):
    """A job asked for a sampling option the engine does not have."""


class Engine(ABC):
    name: ClassVar[str]
    #: Longest text (in characters) one chunk may carry; the splitter cuts to this.
    max_chars: ClassVar[int] = 300
    #: Whether `prepare_voice` clones the narrator; if not, the runner says so once.
    can_clone: ClassVar[bool] = False
    #: Sampling options a job may set under `sampling`, with their defaults.
    option_defaults: ClassVar[dict[str, float]] = {}

    sample_rate: int

    @classmethod
    @abstractmethod
    def revision(cls) -> str:
        """Identify weights and code, without loading them; it is part of every chunk key."""

    @classmethod
    def resolve_options(cls, sampling: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(sampling) - set(cls.option_defaults))
        if unknown:
            known = ", ".join(sorted(cls.option_defaults)) or "none"
            raise OptionError(f"engine '{cls.name}' has no option '{unknown[0]}' (known: {known})")
        return {**cls.option_defaults, **sampling}

    @classmethod
    @abstractmethod
    def load(cls, device: str = "cpu") -> Engine:
        """Load weights once per run."""

    def default_batch_size(self) -> int:
        """How many chunks one `synthesize` call should get when the user sets no limit."""
        return 8

    def prepare_voice(self, voice: VoiceAudio) -> VoiceState:
        """Per-voice state (speaker embedding, prompt tokens); cached on disk by the runner."""
        return {}

    @abstractmethod
    def synthesize(self, requests: list[SynthRequest], voice: VoiceState) -> list[SynthResult]:
        """One waveform per request, in order; all requests share `voice`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads, sessions or device memory."""
