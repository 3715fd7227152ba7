"""The book-text normaliser: a chunk's text as a narrator reads it, before any engine's own frontend.

`normalize(text, language)` spells out numbers, numerals, abbreviations, units, addresses and code identifiers,
and turns the book's pause punctuation (ellipses, dashes, brackets) into clause breaks. English text goes
through `en`, Chinese through `zh`; in either, a run of the other script is left to its own rules (a Chinese
run in an English sentence is read by the Chinese rules, and the other way round). It is idempotent:
normalize(normalize(x)) == normalize(x). `[line]` markers become a clause mark (none at the end), `[scene]`
markers nothing. Text between common.PROTECT_OPEN and PROTECT_CLOSE (a job's
pronunciation replacements) is left as written.
"""

from __future__ import annotations

import re

from batchtts.text.normalize.common import LINE_MARKER, Log, drop_markers, unprotected
from batchtts.text.normalize.en import normalize_en
from batchtts.text.normalize.zh import normalize_zh

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Chinese run: Han characters with the Chinese punctuation, digits and spaces between them.
_ZH_RUN_RE = re.compile(
    rf"(?:\d+(?:\.\d+)?\s*)?[{_HAN}](?:[{_HAN}\d\s，。！？；：、“”‘’《》（）…—．%-]*[{_HAN}])?[，。！？；：、”’》）…]*"
)

# `12_345`, a number with digit separators (code books): the number.
_SEPARATED_RE = re.compile(r"(?<![A-Za-z0-9_])\d+(?:_\d+)+(?![A-Za-z0-9_])")
# `_emphasis_` as plain-text books mark italics: the words, not code.
_EMPHASIS_RE = re.compile(r"(?<![A-Za-z0-9_])_([^_\n]+?)_(?![A-Za-z0-9_])")
# Full-width digits and signs read as their ASCII forms (wetext would turn them into ASCII digits later).
_FULL_WIDTH = str.maketrans("０１２３４５６７８９％＋＝＠＃＊＿～／＼", "0123456789%+=@#*_~/\\")


def _thousands(literal: str) -> bool:
    """Whether `1_000_000` groups its digits in threes (so it reads as 1,000,000)."""
    head, *groups = literal.split("_")
    return len(head) <= 3 and all(len(g) == 3 for g in groups)


def normalize(text: str, language: str, log: Log | None = None) -> str:
    """`text` ("en" or "zh" decides the rules for what is not plainly one script) as a narrator reads it.

    `log`, when given, receives one (class, source, reading) per rewrite: class is one of number, year,
    date, numeral, abbreviation, unit, url, code.
    """
    text = _EMPHASIS_RE.sub(r"\1", text.translate(_FULL_WIDTH))
    text = _SEPARATED_RE.sub(lambda m: m.group(0).replace("_", "," if _thousands(m.group(0)) else ""), text)
    text = re.sub(re.escape(LINE_MARKER) + r"\s*$", "", text)  # a verse line that ends the chunk: no mark added
    text = text.replace(LINE_MARKER, "，" if language == "zh" else ",")
    text = drop_markers(text)
    return unprotected(text, lambda part: _normalize(part, language, log))


def _normalize(text: str, language: str, log: Log | None) -> str:
    if not text.strip():
        return text
    if language == "zh":
        return normalize_zh(text, log)
    if not re.search(f"[{_HAN}]", text):
        return normalize_en(text, log)
    # English with Chinese runs: each run by its own rules.
    out, pos = [], 0
    for m in _ZH_RUN_RE.finditer(text):
        out += [normalize_en(text[pos : m.start()], log) if text[pos : m.start()].strip() else text[pos : m.start()]]
        out.append(" " + normalize_zh(m.group(0), log) + " ")
        pos = m.end()
    out.append(normalize_en(text[pos:], log) if text[pos:].strip() else "")
    text = re.sub(r"\s+([,.!?;:])", r"\1", re.sub(r"\s+", " ", "".join(out))).strip()
    return re.sub(rf"(?<=[{_HAN}])\s+(?=[{_HAN}])", "，", text)  # as the Chinese rules read such a space


__all__ = ["normalize", "Log"]
