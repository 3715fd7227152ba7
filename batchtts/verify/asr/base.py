"""The interface every ASR backend implements: batches of chunk audio in, transcripts out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class AsrBackend(ABC):
    name: ClassVar[str]
    languages: ClassVar[tuple[str, ...]]  # the languages it can transcribe ("en", "zh")
    #: Whether a worker runs it in a child process (verify/asr/child.py, verify/listen.py): for a CPU backend that
    #: holds the GIL while it decodes, so it overlaps synthesis. It then implements `payload` and
    #: `transcribe_payload`. False: it runs in the thread that hands it the takes (Whisper, batched on the GPU).
    in_child: ClassVar[bool] = False

    @classmethod
    def available(cls, language: str, device: str) -> str | None:
        """None when this backend can transcribe `language` on `device` without any network call, else
        why not (one line). Cheap: loads no model."""
        return None if language in cls.languages else f"{cls.name} does not transcribe '{language}'"

    @classmethod
    @abstractmethod
    def load(cls, device: str = "cpu") -> AsrBackend: ...

    @classmethod
    def planned_bytes(cls, device: str) -> int:
        """Device memory the model and its largest batch will take, known without loading it (0 on the CPU):
        `batchtts plan` keeps it from the engine's budget (CostModel.asr_reserve_bytes)."""
        return 0

    def memory_bytes(self) -> int:
        """Device memory the loaded model and its largest batch take (0 on the CPU)."""
        return 0

    def batch_reserve_bytes(self) -> int:
        """Of `memory_bytes`, what its batches take beyond the loaded weights: a worker measures free memory
        after loading the model, so it keeps only this from the engine's budget."""
        return 0

    @abstractmethod
    def transcribe(self, audio: list[np.ndarray], sample_rate: list[int], language: str) -> list[str]:
        """One transcript per clip (float32 mono in [-1, 1], each at its own rate), in `language`."""

    @classmethod
    def payload(cls, clip: np.ndarray, rate: int) -> bytes:
        """One clip as the bytes its child process is sent (`in_child` backends): computed in the parent."""
        raise NotImplementedError(f"{cls.name} does not run in a child process")

    def transcribe_payload(self, payload: bytes, language: str) -> str:
        """The transcript of one clip given as `payload` bytes (`in_child` backends; the child calls this)."""
        raise NotImplementedError(f"{self.name} does not run in a child process")

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
