"""Structured run events (`--log-json FILE`): one JSON object per line for cron log collectors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO


class EventLog:
    def __init__(self, path: Path | None):
        self._fh: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8", buffering=1)

    def emit(self, event: str, **fields: object) -> None:
        if self._fh is not None:
            self._fh.write(
                json.dumps({"ts": round(time.time(), 3), "event": event, **fields}, ensure_ascii=False) + "\n"
            )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
