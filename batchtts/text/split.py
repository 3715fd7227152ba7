"""Cut chapter text into sentence-sized segments for Chinese, English and mixed text.

Every character of the input lands in exactly one segment, in order (whitespace goes with the
segment before it), so timings and subtitles can always be traced back to the source text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchtts.jobs.markup import LINE_MARKER, PAUSE_MARKER_RE, SCENE_LINE_RE, speakable, strip_markers

# Breaks, from strongest to weakest; the stitcher maps each to a pause length. PAUSE is an inline
# marker such as "[pause:1.5]" that sets the pause itself. SCENE (a scene-break line) and LINE (a verse line's
# `[line]` marker) take the job's `pauses.scene` / `pauses.line`; text.chunks turns them into PAUSE with those
# seconds, so later stages see only the breaks above.
PARAGRAPH, SENTENCE, COMMA, HARD, END, PAUSE = "paragraph", "sentence", "comma", "hard", "end", "pause"
SCENE, LINE = "scene", "line"
# A pause marker, or a scene-break line (group "scene"): both end a segment and are never read.
_MARKER_RE = re.compile(rf"{PAUSE_MARKER_RE.pattern}|(?P<scene>{SCENE_LINE_RE.pattern}\s*)", re.IGNORECASE | re.M)


_PARAGRAPH_RE = re.compile(r"\n[^\S\n]*\n\s*")
_CLOSERS = "\"'”’」』）》】〕〉)]"
# Chinese/full-width enders break wherever they stand; ASCII ones need a space, an end or CJK after.
_CJK_END_RE = re.compile(rf"(?:[。！？；．]|…+|！|？)+[{re.escape(_CLOSERS)}]*")
_ASCII_END_RE = re.compile(rf"[.!?]+[{re.escape(_CLOSERS)}]*(?=\s|$|[\u3000-\u9fff\uff00-\uffef])")
_CLAUSE_RE = re.compile(rf"(?:[,，、;：:—…]+[{re.escape(_CLOSERS)}]*|{re.escape(LINE_MARKER)})\s*")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")

# Abbreviations after which a period does not end a sentence (titles and references that are
# followed by a name or a number).
_NO_BREAK_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "gen",
    "col",
    "capt",
    "lt",
    "sgt",
    "rev",
    "hon",
    "mt",
    "no",
    "vol",
    "fig",
    "pp",
    "ch",
    "vs",
    "cf",
    "al",
    "approx",
    "dept",
    "est",
    "ft",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "e.g",
    "i.e",
    "etc",
    "inc",
    "ltd",
    "co",
}


@dataclass(frozen=True)
class Segment:
    start: int  # span [start, end) of the source text, trailing whitespace (and pause marker) included
    end: int
    text: str  # what is spoken: the span without surrounding whitespace and markers
    brk: str  # the break that follows: paragraph, sentence, comma, hard, pause or end
    pause: float | None = None  # seconds, when a marker sets the pause after this segment
    pause_before: float | None = None  # seconds, when the text opens with a marker


def _word_before(text: str, dot: int) -> str:
    """The run of word characters and dots that ends just before `dot` (what `[\\w.]+` would match there).

    Walks back from the period, so each check reads only its own word: the regex search it replaces scanned
    from the start of the text for every period, which made splitting quadratic in the text's length.
    """
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    return text[start:dot]


def _is_abbreviation_stop(text: str, dot: int) -> bool:
    """True when the single '.' at `dot` closes an abbreviation, an initial or a dotted acronym."""
    word = _word_before(text, dot)
    if not word:
        return False
    if word.lower() in _NO_BREAK_ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isupper():  # an initial: "T. S. Eliot"
        return True
    return bool(re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word))  # "U.S.A." / "e.g."


def _sentence_ends(text: str, start: int, end: int) -> list[int]:
    """Offsets just past each sentence terminator (and its closing quotes) inside [start, end)."""
    ends: list[int] = []
    for m in _CJK_END_RE.finditer(text, start, end):
        if m.group(0)[0] == "…" and re.match(r"[^\S\n]*[a-z]", text[m.end() : end]):
            continue  # "still… and then": the sentence goes on
        ends.append(m.end())
    for m in _ASCII_END_RE.finditer(text, start, end):
        mark = m.group(0).rstrip(_CLOSERS)
        if mark == "." and _is_abbreviation_stop(text, m.start()):
            continue
        nxt = re.compile(r"\s*(\S)").match(text, m.end(), end)
        if nxt and nxt.group(1).islower():  # "... e.g. the" or "wait... and then"
            continue
        ends.append(m.end())
    return sorted(set(e for e in ends if e < end))


def _extend_ws(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int, str]]:
    """Split an over-long sentence at clause marks, then at a hard limit; returns (start, end, brk)."""
    pieces: list[tuple[int, int]] = []
    pos = start
    for m in _CLAUSE_RE.finditer(text, start, end):
        digits_around = text[m.start() - 1 : m.start()].isdigit() and text[m.end() : m.end() + 1].isdigit()
        if m.group(0) in (",", ":") and digits_around:
            continue  # a digit group or a time ("20,000,000", "10:30") is one number, not a clause
        if m.end() < end:
            pieces.append((pos, m.end()))
            pos = m.end()
    pieces.append((pos, end))

    out: list[tuple[int, int, str]] = []
    cur_start, cur_end = pieces[0][0], pieces[0][0]
    for p_start, p_end in pieces:
        if cur_end > cur_start and len(text[cur_start:p_end].strip()) > max_chars:
            out.append((cur_start, cur_end, COMMA))
            cur_start = p_start
        cur_end = p_end
        while len(text[cur_start:cur_end].strip()) > max_chars:
            cut = _hard_cut(text, cur_start, cur_end, max_chars)
            out.append((cur_start, cut, HARD))
            cur_start = cut
    out.append((cur_start, cur_end, END))
    return out


def _hard_cut(text: str, start: int, end: int, max_chars: int) -> int:
    """Where to cut [start, end): the last space that keeps the piece within the limit, else the limit."""
    lead = len(text[start:end]) - len(text[start:end].lstrip())
    limit = start + lead + max_chars
    space = text.rfind(" ", start + lead + max_chars // 2, limit + 1)
    cut = space + 1 if space > 0 else limit
    return _extend_ws(text, cut, end)


def split_text(text: str, max_chars: int = 300, min_speakable: int = 3) -> list[Segment]:
    """Segments covering all of `text`.

    `max_chars` is the engine's limit on one chunk's spoken text; fragments with fewer than
    `min_speakable` letters/digits are merged into a neighbour so no chunk is a lone "Oh." or "……".
    Pause markers ("[pause:1.5]") end a segment and set the pause after it; fragments never merge
    across them. An engine with a chunk rule in its own units uses chunkrule.split_by_rule instead.
    """
    if max_chars < 8:
        raise ValueError("max_chars must be at least 8")
    out: list[Segment] = []
    lead: float | None = None
    pos = 0
    for marker in [*_MARKER_RE.finditer(text), None]:
        piece_end = marker.start() if marker else len(text)
        raw = _merge_fragments(text, _segments_in(text, pos, piece_end, max_chars), max_chars, min_speakable)
        out += [Segment(a, b, text[a:b].strip(), _line_brk(text, a, b, brk)) for a, b, brk, _ in raw]
        if marker is None:
            break
        if marker.group("scene") is not None:
            if out:  # a scene break after text (one at the very start is nothing to pause after)
                last = out[-1]
                out[-1] = Segment(last.start, marker.end(), last.text, SCENE, last.pause, last.pause_before)
            pos = marker.end()
            continue
        seconds = float(marker.group(1))
        if raw:
            last = out[-1]
            out[-1] = Segment(last.start, marker.end(), last.text, PAUSE, seconds)
        elif out:  # two markers in a row: the pauses add up
            last = out[-1]
            out[-1] = Segment(last.start, marker.end(), last.text, PAUSE, (last.pause or 0.0) + seconds)
        else:  # the text opens with a marker
            lead = (lead or 0.0) + seconds
        pos = marker.end()
    if not out:
        return [Segment(0, len(text), strip_markers(text).strip(), END, None, lead)]
    if lead is not None or out[0].start != 0:
        first = out[0]
        out[0] = Segment(0, first.end, first.text, first.brk, first.pause, lead)
    if out[-1].end != len(text):  # whitespace after a closing marker
        last = out[-1]
        out[-1] = Segment(last.start, len(text), last.text, last.brk, last.pause, last.pause_before)
    if out[-1].brk not in (PAUSE,):
        last = out[-1]
        out[-1] = Segment(last.start, last.end, last.text, END, None, last.pause_before)
    return out


def _line_brk(text: str, start: int, end: int, brk: str) -> str:
    """LINE for a piece that ends at a verse line's `[line]` marker inside a sentence, else `brk`."""
    if brk in (COMMA, HARD, SENTENCE) and text[start:end].rstrip().endswith(LINE_MARKER):
        return LINE
    return brk


def _segments_in(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int, str, int]]:
    """Raw (start, end, brk, paragraph number) pieces of text[start:end]: paragraphs, sentences, cuts."""
    raw: list[tuple[int, int, str, int]] = []
    para_start = start
    paragraphs = [m.end() for m in _PARAGRAPH_RE.finditer(text, start, end)] + [end]
    for para_no, para_end in enumerate(paragraphs):
        if para_end <= para_start:
            continue
        if not text[para_start:para_end].strip():
            if raw:  # blank run: give it to the segment before
                s, _, b, p = raw[-1]
                raw[-1] = (s, para_end, b, p)
            para_start = para_end
            continue
        pos = para_start
        bounds = [_extend_ws(text, e, para_end) for e in _sentence_ends(text, para_start, para_end)]
        for sent_end in [b for b in bounds if b < para_end] + [para_end]:
            if sent_end <= pos:
                continue
            brk = PARAGRAPH if sent_end == para_end and para_end < len(text) else SENTENCE
            for p_start, p_end, p_brk in _cut_long(text, pos, sent_end, max_chars):
                raw.append((p_start, p_end, brk if p_brk == END else p_brk, para_no))
            pos = sent_end
        para_start = para_end
    if raw and raw[0][0] != start:  # leading whitespace belongs to the first piece
        s, e, b, p = raw[0]
        raw[0] = (start, e, b, p)
    return raw


def _merge_fragments(
    text: str, raw: list[tuple[int, int, str, int]], max_chars: int, min_speakable: int
) -> list[tuple[int, int, str, int]]:
    """Fold tiny or unspeakable pieces into a neighbour, the next one in the paragraph first."""
    segs = list(raw)
    i = 0
    while i < len(segs):
        s, e, b, p = segs[i]
        n = speakable(text[s:e])
        if n >= min_speakable or len(segs) == 1:
            i += 1
            continue

        def fits(a: int, z: int, n: int = n) -> bool:
            return n == 0 or len(text[a:z].strip()) <= max_chars

        nxt = segs[i + 1] if i + 1 < len(segs) else None
        prev = segs[i - 1] if i > 0 else None
        # Only within a paragraph: a short heading ("I", "第一回") stays its own chunk. A piece with nothing to
        # say at all (a paragraph of dots) may join a neighbour across the break.
        if nxt and (nxt[3] == p or n == 0 and (prev is None or prev[3] != p)) and fits(s, nxt[1]):
            segs[i : i + 2] = [(s, nxt[1], nxt[2], nxt[3])]
        elif prev and (prev[3] == p or n == 0) and fits(prev[0], e):
            segs[i - 1 : i + 1] = [(prev[0], e, b, prev[3])]
            i -= 1
        else:
            i += 1
    return segs


def detect_language(text: str) -> str:
    """'zh' when Chinese characters carry the sentence (one Han ~ three Latin letters), else 'en'."""
    han = len(_HAN_RE.findall(text))
    return "zh" if han and han * 3 >= len(_LATIN_RE.findall(text)) else "en"
