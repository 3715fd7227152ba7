"""Where each sentence sits in its chapter: SRT and WebVTT cues and a JSON manifest.

The manifest (chunk key, text, start, end) is what read-along players and "redo this one sentence"
tools need; subtitles are the same data for ordinary players.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from batchtts.jobs.targets import timing_files
from batchtts.output.stitch import Cue
from batchtts.state.atomic import atomic_write_bytes


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


LINE_CHARS = 42  # a subtitle line's usual limit; a cue's text is wrapped onto two lines past it
_MARKER_RE = re.compile(r"\[(?:pause:[^\]]*|scene|line)\]", re.IGNORECASE)


def cue_text(text: str) -> str:
    """A cue's text as every reader accepts it: the book's words on one line, or on two (split at the space,
    or for Chinese the punctuation, nearest the middle) when longer than LINE_CHARS; never a blank line,
    never `-->` (an arrow instead). A cue with nothing left to show gets "…"."""
    text = " ".join(_MARKER_RE.sub(" ", text).replace("-->", "→").split())
    if not text:
        return "…"
    if len(text) <= LINE_CHARS:
        return text
    mid = len(text) // 2
    cuts = [i + 1 for i, c in enumerate(text[:-1]) if c == " " or c in "，。；：、！？,;:"]
    cut = min(cuts, key=lambda i: abs(i - mid)) if cuts else mid
    first, second = text[:cut].strip(), text[cut:].strip()
    return f"{first}\n{second}" if first and second else text


def srt(cues: list[Cue]) -> str:
    blocks = [
        f"{n}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{cue_text(c.text)}\n" for n, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def vtt(cues: list[Cue]) -> str:
    blocks = [f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{cue_text(c.text)}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def manifest(cues: list[Cue], info: dict, verified: dict[str, dict] | None = None) -> str:
    """`verified`: key -> what ASR verification said of its take (asr, takes, flagged), added to its row."""
    verified = verified or {}
    rows = [
        {"index": c.index, "key": c.key, "text": c.text, "start": round(c.start, 4), "end": round(c.end, 4)}
        | verified.get(c.key, {})
        for c in cues
    ]
    return json.dumps({**info, "chunks": rows}, ensure_ascii=False, indent=1)


def write_timings(output: Path, cues: list[Cue], info: dict, verified: dict[str, dict] | None = None) -> list[Path]:
    """Write <stem>.srt, <stem>.vtt and <stem>.json beside the chapter file."""
    paths = timing_files(output)
    for path, text in zip(paths, (srt(cues), vtt(cues), manifest(cues, info, verified)), strict=True):
        atomic_write_bytes(path, text.encode("utf-8"))
    return paths
