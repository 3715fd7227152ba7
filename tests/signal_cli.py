"""`python -m tests.signal_cli ...`: the batchtts CLI with the test engines registered, for tests that signal
a real process. The `gate` engine blocks inside its first batch until the file $BATCHTTS_GATE/open exists, so
a test can deliver signals while a batch is certainly running, whatever the machine's speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from batchtts.engines import register_engine
from batchtts.engines.base import SynthRequest, SynthResult, VoiceState
from tests.fakes import ToneEngine


class GateEngine(ToneEngine):
    name = "gate"

    def synthesize(self, requests: list[SynthRequest], voice: VoiceState) -> list[SynthResult]:
        gate = Path(os.environ["BATCHTTS_GATE"])
        (gate / "entered").touch()
        deadline = time.monotonic() + 120  # never hang a test run for ever
        while not (gate / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return super().synthesize(requests, voice)


register_engine(ToneEngine)
register_engine(GateEngine)

if __name__ == "__main__":
    from batchtts.cli import main

    main()
