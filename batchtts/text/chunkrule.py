"""Chunk lengths measured in an engine's own units (split.py's `rule`), for engines that declare them.

An engine trained on pieces of a certain length (GLM-TTS: 30 to 60 units, a Chinese character counting 1)
declares a ChunkRule. The splitter's sentences are then regrouped as the official long-text code does:
sentence and clause pieces are gathered until a chunk holds at least `min_units` and is closed at that
punctuation; nothing grows past `max_units` (a piece that long alone is cut at a space, or between
Chinese characters). Paragraph breaks and pause markers are never crossed, so their pauses stay, and
neither is a change between a Chinese and an English sentence (unlike the official code, which would send
the English sentence through the Chinese normaliser with its neighbour).
Engines without a rule keep the character limit (`max_chars`) exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.jobs.markup import LINE_MARKER, strip_markers
from batchtts.text.split import COMMA, HARD, LINE, PARAGRAPH, PAUSE, SCENE, Segment, detect_language, split_text

# A clause may end after these: full-width marks, ellipses and dashes anywhere (the normaliser reads them as a
# clause pause), ASCII ones before a space or the end, a verse line's marker.
_CLAUSE_END_RE = re.compile(
    r"(?:(?:[，、；：…—]+|[,;:](?=\s|$|[\u3400-\u9fff])|\.{3}(?=\s)|\s[–-](?=\s))[\"'”’」』）》】)\]]*|"
    + re.escape(LINE_MARKER)
    + r")\s*"
)


@dataclass(frozen=True)
class ChunkRule:
    units: Callable[[str], float]  # length of a text in the engine's units
    min_units: float
    max_units: float


def _pieces(text: str, seg: Segment) -> list[tuple[int, int]]:
    """Clause spans of one segment, covering [seg.start, seg.end)."""
    cuts = [m.end() for m in _CLAUSE_END_RE.finditer(text, seg.start, seg.end) if m.end() < seg.end]
    cuts = [c for c in cuts if strip_markers(text[c : seg.end]).strip()]  # never leave an empty tail
    bounds = [seg.start, *cuts, seg.end]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _hard_cuts(text: str, start: int, end: int, rule: ChunkRule) -> list[int]:
    """Cut points inside [start, end) so that no part passes max_units: the last space that keeps a part
    within the limit, else the last character that does (Chinese has no spaces)."""
    cuts, pos = [], start
    while rule.units(text[pos:end]) > rule.max_units:
        lo, hi = pos + 1, end  # longest prefix text[pos:k] within the limit, by bisection (units grow with k)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if rule.units(text[pos:mid]) <= rule.max_units:
                lo = mid
            else:
                hi = mid - 1
        space = text.rfind(" ", pos + (lo - pos) // 2, lo + 1)
        cut = space + 1 if space > pos else lo
        if text[cut - 1 : cut].isalpha() and text[cut : cut + 1].isalpha() and space <= pos:
            cut = lo  # no space to use: cut mid-word rather than loop
        while cut < end and text[cut].isspace():
            cut += 1
        if cut <= pos or cut >= end:
            break
        cuts.append(cut)
        pos = cut
    return cuts


def _group(text: str, segs: list[Segment], rule: ChunkRule) -> list[Segment]:
    """Regroup the segments of one paragraph run (no paragraph break or pause marker inside)."""
    spans: list[tuple[int, int, Segment, str]] = []  # (start, end, segment, the break after it)
    for seg in segs:
        parts = _pieces(text, seg)
        for i, (a, b) in enumerate(parts):
            edges = [a, *_hard_cuts(text, a, b, rule), b]
            for j, (x, y) in enumerate(zip(edges, edges[1:], strict=False)):
                inner = j < len(edges) - 2
                brk = HARD if inner else COMMA if i < len(parts) - 1 else seg.brk
                if brk in (COMMA, HARD) and text[x:y].rstrip().endswith(LINE_MARKER):
                    brk = LINE
                spans.append((x, y, seg, brk))
    out: list[tuple[int, int, str, Segment]] = []  # (start, end, break, the segment it ends in)
    cur: list[tuple[int, int, Segment, str]] = []

    def units(a: int, b: int) -> float:
        return rule.units(strip_markers(text[a:b]))

    def close() -> None:
        out.append((cur[0][0], cur[-1][1], cur[-1][3], cur[-1][2]))
        cur.clear()

    for span in spans:
        if cur and (
            units(cur[0][0], span[1]) > rule.max_units
            or detect_language(cur[-1][2].text) != detect_language(span[2].text)
        ):
            close()
        cur.append(span)
        if units(cur[0][0], cur[-1][1]) >= rule.min_units:
            # Inside a sentence, close only where the rest of the sentence would not fit: a chunk never ends
            # just before a 1-4 character clause ("有日，" | "有月，有星，有辰。").
            seg = span[2]
            if span[1] == seg.end or units(cur[0][0], seg.end) > rule.max_units:
                close()
    if cur:
        close()
    if (
        len(out) > 1
        and rule.units(strip_markers(text[out[-1][0] : out[-1][1]])) < rule.min_units
        and detect_language(out[-1][3].text) == detect_language(out[-2][3].text)
    ):
        a, _, _, _ = out[-2]
        _, b, brk, seg = out[-1]
        if rule.units(strip_markers(text[a:b])) <= rule.max_units:  # a short tail joins the chunk before
            out[-2:] = [(a, b, brk, seg)]
    first = segs[0]
    result = []
    for a, b, brk, seg in out:
        ends = b == seg.end
        result.append(
            Segment(
                a,
                b,
                strip_markers(text[a:b], keep_lines=True).strip(),
                brk,
                seg.pause if ends else None,
                first.pause_before if a == first.start else None,
            )
        )
    return result


def split_by_rule(text: str, rule: ChunkRule, min_speakable: int = 3) -> list[Segment]:
    """Segments covering all of `text`, sentences grouped to the engine's rule instead of a character limit."""
    return apply_rule(text, split_text(text, 1 << 30, min_speakable), rule)


def apply_rule(text: str, segments: list[Segment], rule: ChunkRule) -> list[Segment]:
    """Segments regrouped to the rule; coverage of `text` and every break that sets a pause are kept."""
    out: list[Segment] = []
    run: list[Segment] = []
    for seg in segments:
        run.append(seg)
        if seg.brk in (PARAGRAPH, PAUSE, SCENE):
            out += _group(text, run, rule)
            run = []
    if run:
        out += _group(text, run, rule)
    return out
