"""`python -m tests.signal_cli ...`: the batchtts CLI with the test engines registered, for tests that signal
or kill a real process. The `gate` engine lets $BATCHTTS_GATE_AFTER batches (default 0) through, then blocks
inside the next one until the file $BATCHTTS_GATE/open exists, having touched $BATCHTTS_GATE/entered; so a
test can deliver a signal or a kill while a batch is certainly running, after a known number of batches,
whatever the machine's speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from batchtts.engines import register_engine
from batchtts.engines.base import SynthRequest, SynthResult, VoiceState
from tests.fakes import HANG_GUARD_S, ToneEngine


class GateEngine(ToneEngine):
    name = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def synthesize(self, requests: list[SynthRequest], voice: VoiceState) -> list[SynthResult]:
        gate = Path(os.environ["BATCHTTS_GATE"])
        self.batches += 1
        if self.batches > int(os.environ.get("BATCHTTS_GATE_AFTER", "0")):
            (gate / "entered").touch()
            deadline = time.monotonic() + HANG_GUARD_S
            while not (gate / "open").exists():
                if time.monotonic() > deadline:  # a hang guard: never hang a test run for ever, never go on quietly
                    raise RuntimeError(f"{gate / 'open'} did not appear within {HANG_GUARD_S} s")
                time.sleep(0.01)
        return super().synthesize(requests, voice)


register_engine(ToneEngine)
register_engine(GateEngine)

if __name__ == "__main__":
    from batchtts.cli import main

    main()
