"""Where engines run: this process (local) or actors on a Ray cluster. Both take the same `Work` and
settings and hand every batch outcome to the same `commit`, so the driver commits exactly alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from batchtts.state.voice import VoiceAudio, VoiceCache
from batchtts.synthesis.worker import BatchOutcome, History, SynthSettings
from batchtts.text.chunks import Chunk
from batchtts.verify.stage import Plans


@dataclass(frozen=True)
class Work:
    """One engine's pending chunks and what a worker needs to synthesize them."""

    engine: str
    todo: list[Chunk]
    voices: dict[str, VoiceAudio]
    attempts: dict[str, int] = field(default_factory=dict)  # failed attempts so far, per key (new seeds)
    history: History = field(default_factory=dict)  # finished rolling-context sentences
    verify: Plans = field(default_factory=dict)  # (job id, language) -> how its takes are verified


class Executor(Protocol):
    def execute(
        self,
        work: Work,
        settings: SynthSettings,
        commit: Callable[[BatchOutcome], None],
        stop: Callable[[], bool],
        cache: VoiceCache | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"  # or "ray"
    address: str | None = None  # Ray cluster: "auto", "ray://host:port"; None starts a local one
    workers: int | None = None  # Ray actors (default: one per GPU, or per CPU for CPU engines)
    gpus_per_worker: float = 0.0


def executor(options: ExecutorOptions) -> Executor:
    if options.kind == "ray":
        from batchtts.synthesis.executors.ray import RayExecutor

        return RayExecutor(options)
    from batchtts.synthesis.executors.local import LocalExecutor

    return LocalExecutor()
