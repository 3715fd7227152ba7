"""The rules of a plain-text book: heading lines, matter headings, and the markup plain-text editions carry.

Sources: Project Gutenberg's plain-text conventions (`_italics_`, `[Illustration: …]`, `[Footnote 1: …]`, `--`
for a dash, `* * *` between scenes; https://www.gutenberg.org/policy/formatting), and the division words of
English and Chinese novels (Chapter/Letter/Book/Part, 第…章/回/节/卷, 楔子, 序章, 引子, 尾声).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from batchtts.importer.document import nonspace

_NUM_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|first|second|"
    "third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|final"
)
_NUM = rf"(?:\d+|[ivxlcdm]+\b|(?:{_NUM_WORDS})(?:[\s-]+(?:{_NUM_WORDS}))*\b)"
_ZH_NUM = r"[0-9０-９零〇一二三四五六七八九十百千两廿卅]+"
# Decoration a source puts before a heading: brackets, "目录" links, ornaments.
_LEAD = r"[\s《》〈〉【】\[\]()（）「」『』<>#*=~·•-]*(?:目录|目錄)?[\s《》〈〉【】\[\]()（）「」『』<>#*=~·•-]*"
_HEADING_RE = re.compile(
    rf"""{_LEAD}(?P<head>
        (?:(?:book|part|volume|vol\.)\s+{_NUM}[.:]?\s+)?(?:chapter|letter|canto|stave|section)\s+{_NUM}[^\n]{{0,80}}
      | (?:book|part|volume)\s+{_NUM}\b[^\n]{{0,60}}
      | (?:卷{_ZH_NUM}\s*)?第\s*{_ZH_NUM}\s*[章回节節卷部篇集幕][^\n]{{0,40}}
      | 卷{_ZH_NUM}[^\n]{{0,30}}
      | (?:prologue|epilogue|preface|foreword|introduction|afterword|postscript|author['’]s\s+note|
         prelude|interlude)\b[^\n]{{0,60}}
      | (?:楔子|序章|序言|序|引子|前言|尾声|尾聲|后记|後記|番外)(?:[\s：:　][^\n]{{0,30}})?
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Headings of matter: what they open is left out, not read.
_MATTER_RE = re.compile(
    r"""\s*(?P<kind>(?:table\s+of\s+)?contents|目\s*录|目\s*錄|index|glossary|bibliography|footnotes|notes|
    endnotes|transcriber['’]?s?\s+notes?|dedication|献词|索引|参考文献|注释)[.:]?\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_CJK_SENTENCE = re.compile(r"[，。．！？；、]")
_TRAILING = re.compile(r"[\s.\]\)）】」』:：;,]+$")
_SMALL = {"of", "the", "a", "an", "and", "in", "on", "to", "at", "for", "with", "by", "from", "or", "is", "as"}
_TITLE_KINDS = re.compile(r"(?i)\s*(?:(?:book|part|volume)\b|chapter\b|第)")
_NUMBER_ONLY = re.compile(rf"(?i)\s*(?:(?:book|part|volume|vol\.)\s+{_NUM}[.:]?\s+)?chapter\s+{_NUM}[.:]?\s*$")


def heading_of(line: str) -> str | None:
    """The clean heading ('Chapter I', '第一回 甄士隐梦幻识通灵') when LINE is a chapter heading, else None.

    Refused: a line holding Chinese sentence punctuation (a body sentence that starts like a heading).
    """
    m = _HEADING_RE.fullmatch(line.strip())
    if not m:
        return None
    head = m.group("head")
    if _CJK_SENTENCE.search(head):
        return None
    head = _TRAILING.sub("", " ".join(head.split()))
    opened, closed = head.count("["), head.count("]")
    if closed > opened:
        head = head.replace("]", "")
    return head or None


def matter_heading(line: str) -> str | None:
    """'contents', 'index', 'dedication'... when LINE is only such a heading."""
    m = _MATTER_RE.fullmatch(line)
    return " ".join(m.group("kind").lower().split()) if m else None


def heading_key(title: str) -> str:
    """What makes two headings the same division (a repeated heading is merged)."""
    return " ".join(re.sub(r"[^\w\s]", " ", title).casefold().split()[:2])


def is_name_line(line: str, heading: str) -> bool:
    """LINE (the next paragraph) is the chapter's name: after a bare 'Chapter 3' or '第三回', a short line in
    title case ('The Carpet-Bag.') or a short Chinese line without sentence punctuation."""
    if not _TITLE_KINDS.match(heading) or not (_NUMBER_ONLY.match(heading) or re.fullmatch(r"第\S+", heading)):
        return False
    line = line.strip()
    if not line or len(line) > 60 or line.endswith((",", ";", ":", "—")) or heading_of(line):
        return False
    if re.search(r"[\u4e00-\u9fff]", line):
        return len(line) <= 24 and not _CJK_SENTENCE.search(line)
    words = re.findall(r"[A-Za-z][\w'’-]*", line)
    return 0 < len(words) <= 8 and all(w[0].isupper() or w.lower() in _SMALL for w in words)


def is_wrapped_sentence(line: str) -> bool:
    """A heading-like first line of a longer paragraph that is prose: eight words or more, mostly lower case."""
    words = re.findall(r"[A-Za-z][\w'’-]*", line)
    return len(words) >= 8 and sum(w[0].islower() for w in words) > len(words) // 2


@dataclass(frozen=True)
class Rule:
    reason: str
    pattern: re.Pattern
    keep: str | None = None  # a group kept (the words inside `_italics_`), else everything dropped


# Spans dropped or unwrapped inside a paragraph, in this order. Each counts the characters it removes.
INLINE_RULES = (
    Rule("illustration", re.compile(r"\[Illustration(?::[^\]]*)?\]", re.IGNORECASE)),
    Rule("note", re.compile(r"\[(?:Footnote|Note)\s*[\w*†]*\s*:[^\]]*\]", re.IGNORECASE)),
    Rule("note mark", re.compile(r"\[(?:\d{1,3}|[*†‡§]|[a-z])\]|(?<=\w)[¹²³⁴⁵⁶⁷⁸⁹⁰]+")),
    Rule("markup", re.compile(r"(?<![\w_])_(?=\S)(?P<w>[^_]+?)(?<=\S)_(?![\w_])"), "w"),
    Rule("markup", re.compile(r"(?<![\w*])\*(?=[^\s*])(?P<w>[^*\n]+?)(?<=[^\s*])\*(?![\w*])"), "w"),
    Rule("markup", re.compile(r"(?<![\w=])=(?=\S)(?P<w>[^=\n]+?)(?<=\S)=(?![\w=])"), "w"),
)
_DASH_RE = re.compile(r"(?<!-)--(?!-)")
NOTE_PARAGRAPH = re.compile(r"\s*(?:\[(?:\d{1,3}|[*†‡])\]\s|\[(?:Footnote|Note)\b)", re.IGNORECASE)


def unmark(text: str) -> tuple[str, Counter]:
    """TEXT without plain-text markup (see INLINE_RULES) and with `--` as an em dash; the characters removed,
    by reason. `nonspace(result) + sum(counter) == nonspace(text)`."""
    dropped: Counter = Counter()
    for rule in INLINE_RULES:
        if rule.keep is None:

            def gone(m, reason=rule.reason) -> str:
                dropped[reason] += nonspace(m.group(0))
                return " " if m.group(0)[0] == "[" else ""

        else:

            def gone(m, reason=rule.reason, keep=rule.keep) -> str:
                dropped[reason] += nonspace(m.group(0)) - nonspace(m.group(keep))
                return m.group(keep)

        text = rule.pattern.sub(gone, text)
    n = len(_DASH_RE.findall(text))
    if n:
        text = _DASH_RE.sub("—", text)
        dropped["markup"] += n
    return text, dropped
