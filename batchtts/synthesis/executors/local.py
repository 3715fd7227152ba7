"""Synthesis in this process: one worker, its outcomes committed as they come."""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchtts.state.voice import VoiceCache
from batchtts.synthesis.executors import Work
from batchtts.synthesis.worker import BatchOutcome, SynthSettings, Worker

log = logging.getLogger("batchtts")


class LocalExecutor:
    def execute(
        self,
        work: Work,
        settings: SynthSettings,
        commit: Callable[[BatchOutcome], None],
        stop: Callable[[], bool],
        cache: VoiceCache | None = None,
    ) -> None:
        log.info("loading engine '%s' for %d chunks", work.engine, len({c.key for c in work.todo}))
        worker = Worker(work.engine, settings, work.voices, cache, work.verify)
        try:
            for outcome in worker.work(work.todo, work.attempts, stop, work.history):
                commit(outcome)
        finally:
            worker.close()
