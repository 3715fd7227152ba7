"""The review page: per chapter, the flagged chunks (or all), each with a player for its take, the text the
engine spoke, what the recogniser heard with the differences marked, the score and the number of takes.

Self-contained: one HTML file with inline CSS and no script, the takes as 16-bit WAV files beside it under
`review/`, referenced by relative path; nothing is fetched from the network.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.state.atomic import atomic_write_bytes

AUDIO_DIR = "review"  # beside review.html

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
.chunk{margin:1em 0;padding:.6em .8em;border-left:4px solid #999;background:#fafafa}
.chunk.flagged{border-color:#c33}.meta{color:#666;font-size:.9em}
ins{background:#d7f5d7;text-decoration:none}del{background:#f7d4d4}mark{background:#fde9a6}
audio{width:100%;margin:.3em 0}.label{display:inline-block;min-width:6em;color:#666}
"""


@dataclass(frozen=True)
class ReviewChunk:
    """One take on the page. `diff`: (op, spoken part, heard part) as verify.score.diff gives it."""

    index: int
    key: str
    text: str  # what the engine spoke
    source: str  # the book's text
    audio: np.ndarray
    sample_rate: int
    takes: int | None
    flagged: bool
    metric: str | None
    error: float | None
    transcript: str | None
    diff: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class ReviewJob:
    job_id: str
    title: str
    chunks: tuple[ReviewChunk, ...] = field(default_factory=tuple)


def _marked(diff: tuple[tuple[str, str, str], ...], spoken: bool) -> str:
    """The spoken (or heard) side of an alignment: deleted words struck, inserted ones marked, substitutions
    highlighted."""
    parts = []
    for op, ref, hyp in diff:
        text = html.escape(ref if spoken else hyp)
        if not text:
            continue
        if op == "equal":
            parts.append(text)
        elif op == "substitute":
            parts.append(f"<mark>{text}</mark>")
        elif op == "delete":
            parts.append(f"<del>{text}</del>" if spoken else "")
        else:
            parts.append(f"<ins>{text}</ins>" if not spoken else "")
    return " ".join(p for p in parts if p)


def _chunk(c: ReviewChunk, audio_href: str) -> str:
    score = (
        f"{c.metric.upper()} {c.error:.2f}, {c.takes} take{'s' if c.takes != 1 else ''}"
        if c.metric is not None
        else "not verified"
    )
    flag = " flagged" if c.flagged else ""
    heard = _marked(c.diff, False) if c.diff else html.escape(c.transcript or "")
    spoken = _marked(c.diff, True) if c.diff else html.escape(c.text)
    rows = [
        f'<div class="chunk{flag}" id="{html.escape(c.key)}">',
        f'<div class="meta">#{c.index} · {score}{" · FLAGGED" if c.flagged else ""} · key {c.key[:12]}</div>',
        f'<audio controls preload="none" src="{html.escape(audio_href)}"></audio>',
        f'<div><span class="label">spoken</span> {spoken}</div>',
        f'<div><span class="label">heard</span> {heard}</div>' if c.transcript is not None else "",
        f'<div class="meta"><span class="label">book</span> {html.escape(c.source)}</div>'
        if c.source != c.text
        else "",
        "</div>",
    ]
    return "\n".join(r for r in rows if r)


def write_review(out_dir: Path, jobs: list[ReviewJob], title: str) -> Path:
    """Write <out_dir>/review.html and the takes it plays (<out_dir>/review/<job>-<index>.wav); returns the
    page's path. Raises OSError when the folder cannot be written."""
    out_dir = Path(out_dir)
    sections, total = [], 0
    for job in jobs:
        items = []
        for c in job.chunks:
            name = f"{job.job_id}-{c.index:05d}.wav"
            target = out_dir / AUDIO_DIR / name
            pcm = np.clip(np.asarray(c.audio, np.float32), -1, 1)
            buf = io.BytesIO()
            sf.write(buf, pcm, c.sample_rate, format="WAV", subtype="PCM_16")
            atomic_write_bytes(target, buf.getvalue())
            items.append(_chunk(c, f"{AUDIO_DIR}/{name}"))
        total += len(items)
        body = "\n".join(items) or '<p class="meta">nothing to review</p>'
        sections.append(f'<h2>{html.escape(job.title)} <span class="meta">({len(items)})</span></h2>\n{body}')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="meta">{total} takes to review</p>\n'
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    path = out_dir / "review.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
