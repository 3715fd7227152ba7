"""GLM-TTS's text frontend: what the official `TextFrontEnd.text_normalize` makes of a piece of text, and the
length units its long-text splitter counts. Runs without model weights, at chunk-making time, because the
normalised text is what the chunk key hashes.

Numbers, dates, times, money, percentages and abbreviations are spelled out by WeTextProcessing's compiled
grammars (PyPI `wetext`, the official code's fallback when ttsfrd is absent: Chinese with full-width to
half-width on, English as it comes). Around it, the official rules: markdown list numbers and line breaks,
emoji dropped, a hyphen between letters becomes a space; Chinese text gets GLM-TTS's symbol mapping
(brackets and quotes dropped, `~` -> 到, Greek letters and math signs read out, clause marks -> ，) and is
lower-cased; English keeps only letters, digits and `.,!?':;`, lower-cased; then `!`/`！` become `.`/`。`,
runs of marks collapse, spaces survive only between Latin words, and the text ends in terminal punctuation.
Traditional Chinese is converted to simplified first (OpenCC `t2s`, as the official frontend does). Ours is
idempotent (normalize(normalize(x)) == normalize(x)); the official code normalises twice. Apostrophes inside and at
the end of English words keep their spaces (`parents' house`, not `parents'house`).
Known differences from the official frontend: scientific notation ("3x10^5") reads its numbers through the
same grammars instead of a separate table, and digits the English grammar leaves are read by it again
rather than by `inflect`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from batchtts.text.chunkrule import ChunkRule
from batchtts.text.normalize import normalize as book_normalize
from batchtts.text.split import detect_language

PUNCT = "。？！；：、.?!;:，,"  # the official PUNCTUATION_CHARS
_P = re.escape(PUNCT)
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_LINE_ENDS = set(".!?;:：。！？；，")

# The official tables: single-character replacements after Chinese normalisation.
_ZH_SYMBOLS = {
    "†": "，", "²": "平方", "³": "立方", "/": "每", "~": "到", "～": "到",
    "①": "一", "②": "二", "③": "三", "④": "四", "⑤": "五", "⑥": "六", "⑦": "七", "⑧": "八", "⑨": "九", "⑩": "十",
    "α": "阿尔法", "β": "贝塔", "γ": "伽玛", "Γ": "伽玛", "δ": "德尔塔", "Δ": "德尔塔", "△": "德尔塔",
    "ε": "艾普西龙", "ζ": "捷塔", "η": "依塔", "θ": "西塔", "Θ": "西塔", "ι": "艾欧塔", "κ": "喀帕",
    "λ": "拉姆达", "Λ": "拉姆达", "μ": "缪", "ν": "拗", "ξ": "克西", "Ξ": "克西", "ο": "欧米克伦", "π": "派",
    "Π": "派", "ρ": "肉", "ς": "西格玛", "Σ": "西格玛", "σ": "西格玛", "τ": "套", "υ": "宇普西龙", "φ": "服艾",
    "Φ": "服艾", "χ": "器", "ψ": "普赛", "Ψ": "普赛", "ω": "欧米伽", "Ω": "欧米伽", "□": "方框",
    ">": "大于", "<": "小于", "∈": "属于", "∉": "不属于", "∪": "并", "∩": "交", "⊥": "垂直", "∥": "平行",
    "≠": "不等于", "∵": "因为", "∴": "所以", "∅": "空集", "⊂": "真包含于", "⊃": "包含", "⊆": "包含于",
    "⊇": "真包含", "⊄": "不属于", "⊅": "非超集", "⊈": "不属于", "⊉": "非超集",
}  # fmt: skip
_ZH_CUSTOM = {"噢": "哦", "欸": "诶"}  # configs/custom_replace.jsonl of the official repository
_BRACKETS = "()（）【】「」`《》『』{}[]"
_SCI_RE = re.compile(r"(-?\d+(?:\.\d+)?)[*x×](\d+(?:\.\d+)?)\^(-?\d+(?:\.\d+)?)")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese characters as simplified ones (OpenCC t2s); other text unchanged."""
    return _t2s().convert(text) if has_chinese(text) else text


@lru_cache(maxsize=1)
def _normalizers():
    from wetext import Normalizer

    zh = Normalizer(lang="zh", operator="tn", full_to_half=True, remove_erhua=False, remove_interjections=False)
    return _safe(zh), _safe(Normalizer(lang="en", operator="tn"))


def _safe(normalizer):
    """wetext's normalize, on single-spaced text (its token parser rejects empty tokens), never raising:
    text it cannot parse is read as written."""

    class Safe:
        def normalize(self, text: str) -> str:
            text = re.sub(r"[^\S\n]+", " ", text).strip()
            try:
                return normalizer.normalize(text) if text else text
            except (AssertionError, ValueError, IndexError):
                return text

    return Safe()


def has_chinese(text: str) -> bool:
    return bool(_HAN_RE.search(text))


def _multiply(text: str, word: str, digits: str) -> str:
    """`*` between numbers or letters (or their brackets) is read as `word`; any other `*` goes."""
    a = rf"[{digits}a-zA-Z]"
    text = re.sub(rf"(?:(?<={a})|(?<={a}\)))\s*\*\s*(?=\(?{a})", word, text)
    return text.replace("*", "")


def _preprocess(text: str) -> str:
    text = re.sub(r"^(\d+)\. ", r"\1。", text).replace("\\n", "\n")  # a markdown list number is not a decimal
    lines = []
    for line in (raw.strip() for raw in text.split("\n")):
        if line:
            if line[-1] not in _LINE_ENDS:
                line = line + "。" if has_chinese(line) else line + ". "
            lines.append(line)
    text = ("" if has_chinese("".join(lines)) else " ").join(lines)
    text = _emoji().replace_emoji(text, replace="")
    return re.sub(r"(?<=[a-zA-Z])-(?=[a-zA-Z])", " ", text)


def _emoji():
    import emoji

    return emoji


def _chinese(text: str) -> str:
    zh, _ = _normalizers()
    text = _SCI_RE.sub(lambda m: f"{m[1]}乘{m[2]}的{m[3]}次方", text)
    text = re.sub(r"(?<=\d)\s*-\s*(?=\d)", "减", text).replace("-", "")
    text = re.sub(rf"咯(?=[{_P}])", "喽", text)
    for a, b in _ZH_CUSTOM.items():
        text = text.replace(a, b)
    text = zh.normalize(text)
    text = text.replace("\\", "")
    text = re.sub(r"(?<=\W)额(?=\W)", "呃", f" {text} ")
    text = re.sub(r"[~～]+", "。", text)
    text = _multiply(text, "乘", "一二三四五六七八九十百千万亿").strip()
    for c in _BRACKETS + "‘’":
        text = text.replace(c, "")
    text = text.replace(" - ", "，").replace("——", "，")
    text = re.sub(r"[,:：;；、]+", "，", text)
    text = re.sub(r"[.…]+", "。", text)
    text = re.sub(r"[_·]+", "", text)
    text = re.sub(r"""['"‘’“”|]+""", "", text)
    return "".join(_ZH_SYMBOLS.get(c, c) for c in text)


def _english(text: str) -> str:
    _, en = _normalizers()
    text = en.normalize(text.replace("'", "’"))
    for c in _BRACKETS:
        text = text.replace(c, "")
    text = _multiply(text, "multiply", "0-9").replace("—", " ").replace("’", "'")
    text = re.sub(r"\d+", lambda m: en.normalize(m[0]), text)  # the official code reads these with inflect
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[^\w\s.,!?':;]", "", text).lower()
    text = re.sub(r"([.,!?':;])\1+", r"\1", text)
    return re.sub(r"\s*([.,?!:;])\s*", r"\1 ", text).strip()  # apostrophes stay where the words have them


def _spaces(text: str) -> str:
    """A space survives only between two Latin letters/digits, or after ASCII punctuation (or a word's final
    apostrophe) before one."""
    text = re.sub(r" +", " ", text)
    return re.sub(r"(?<![a-zA-Z0-9.,!?;:])(?<![a-zA-Z]') | (?![a-zA-Z0-9])", "", text)


def normalize(text: str, language: str = "") -> str:
    """The official text_normalize. The language is decided as there: any Chinese character selects the
    Chinese path; `language` is accepted for the engine interface and not needed."""
    text = _preprocess(to_simplified(text))
    text = _chinese(text).lower() if has_chinese(text) else _english(text)
    text = re.sub(r"'{2,}", "'", _spaces(text))  # quotes that met once spaces went: one, as a second pass makes
    text = re.sub(rf"([{_P}])\1+", r"\1", text)
    text = re.sub(rf"[{_P}](?=[{_P}])", "", text)  # of different marks in a row the last stays
    text = text.replace("#", "").replace("！", "。").replace("!", ".")
    if has_chinese(text):  # marks wetext made half-width stay Chinese, so a second pass reads them the same
        text = re.sub(r"(?<=[\u4e00-\u9fff])\.", "。", text).replace("?", "？")
    if text and text[-1] in "？?":
        return text
    end = "。" if has_chinese(text) else "."
    return (text[:-1] if text and text[-1] in PUNCT else text) + end


@lru_cache(maxsize=65536)
def _syllables(word: str) -> int:
    """As the official count: the CMU dictionary's first pronunciation (`pronouncing`), else vowel groups
    with a final silent e dropped."""
    import pronouncing

    phones = pronouncing.phones_for_word(word)
    if phones:
        return pronouncing.syllable_count(phones[0])
    n = len(re.findall(r"(?!e$)[aeiouy]+", word, flags=re.I))
    if re.fullmatch(r"[^aeiouy]*e", word, flags=re.I):
        n += 1
    return max(n, 1)


_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word: a letter, then letters, apostrophes or hyphens (the official split_into_units); else one character.
_UNIT_RE = re.compile(rf"[^\W\d_{_CJK}](?:[^\W\d_{_CJK}]|['-])*|\S")


def length_units(text: str) -> float:
    """The official split length: a Chinese character or any other mark 1, an English word 0.7 a syllable
    (a word with an apostrophe or a non-ASCII letter counts 1), spaces nothing."""
    total = 0.0
    for m in _UNIT_RE.finditer(text):
        unit = m.group(0)
        if unit.isascii() and unit.isalpha():
            total += 0.7 * _syllables(unit)
        else:
            total += 1
    return total


@lru_cache(maxsize=65536)
def read_units(text: str) -> float:
    """length_units of what the engine will read for a piece of source text (the book-text normaliser's reading:
    `2011年` counts as 二零一一年, and the terminal stop the frontend adds counts 1), so chunks keep within the
    official 60 units as the engine reads them."""
    said = book_normalize(text, detect_language(text)).rstrip()
    return length_units(said) + (0 if said and said[-1] in PUNCT + "”’」』）》】)]\"'" else 1)  # the stop it adds


CHUNK_RULE = ChunkRule(units=read_units, min_units=30, max_units=60)
