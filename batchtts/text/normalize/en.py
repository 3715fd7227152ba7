"""The English book-text normaliser: what a narrator says for the numbers, numerals, abbreviations, units and
symbols of a book's English text. Numbers are read by num2words (en_numbers); the rules for book context
(which number is a year, which capital letters are a Roman numeral, which `St.` is a saint) are ours.
"""

from __future__ import annotations

import re

from batchtts.text.normalize import en_numbers as n
from batchtts.text.normalize.common import CODE_RE, ELLIPSIS_RE, EMAIL_RE, URL_RE, Log, Rules, code_words, url_host
from batchtts.text.normalize.en_tables import ABBREVIATIONS, CURRENCY, MONTH_ABBR, REGNAL, UNITS

R = Rules()
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTH = rf"(?:{MONTHS}|(?:{'|'.join(MONTH_ABBR)})\.?)"
_HEADING_WORDS = r"(?:Chapter|Part|Book|Act|Scene|Volume|Vol\.|Canto|Section|Letter|Appendix|Stave|Psalm|Lesson|Day)"
_HEADING_WORDS = rf"(?:{_HEADING_WORDS[3:-1]}|{_HEADING_WORDS[3:-1].upper()})"  # "Chapter XII" and "CHAPTER XII"
_YEAR_WORDS = r"(?:Copyright|copyright|©|in|In|since|Since|by|of|from|From|until|till|to|circa|c\.|ca\.|before|after|year|years|Anno|around|about|early|late|mid|summer|winter|spring|autumn|fall|during|between|and|the)"  # noqa: E501
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))


@R.add("url", r"\S+")
def _web(m: re.Match) -> str | None:
    token = m.group(0)
    if URL_RE.search(token) is None and EMAIL_RE.search(token) is None:
        return None
    token = URL_RE.sub(lambda u: " dot ".join(url_host(u.group(0)).split(".")), token)
    return EMAIL_RE.sub(lambda e: e.group(0).replace("@", " at ").replace(".", " dot "), token)


@R.add("code", CODE_RE.pattern)
def _code(m: re.Match) -> str | None:
    token = m.group(0)
    if "_" not in token and not token.endswith("()"):
        pieces = token.split(".")
        if all(len(p) <= 2 for p in pieces) or token.rstrip(".").lower() in ("e.g", "i.e", "a.m", "p.m"):
            return None  # initials and abbreviations
        if len(pieces) == 2 and pieces[0][:1].isupper() and pieces[1][:1].isupper():
            return None  # "Mr.Smith" style typo or two sentences run together
    return " dot ".join(code_words(token))


@R.add("code", r"\b(?:[Vv]ersion\s+[vV]?|[vV])(\d+(?:\.\d+)+)\b")
def _version(m: re.Match) -> str:
    parts = m.group(1).split(".")
    return "version " + " point ".join(n.cardinal(p) for p in parts)


@R.add("number", r"\b\d+(?:\.\d+){2,}\b")
def _dotted(m: re.Match) -> str:
    return " point ".join(n.cardinal(p) for p in m.group(0).split("."))


@R.add("abbreviation", r"\b(?:A\.\s?D\.|B\.\s?C\.(?:\s?E\.)?|C\.\s?E\.|AD|BC|BCE|CE)(?=\W|$)")
def _era(m: re.Match) -> str | None:
    letters = re.sub(r"[^A-Z]", "", m.group(0))
    around = m.string[max(0, m.start() - 12) : m.end() + 8]
    if letters in ("AD", "CE") and not re.search(r"\d", around):
        return None
    said = " ".join(letters)
    if m.group(0).endswith(".") and re.fullmatch(r"\s*", m.string[m.end() :]):
        said += "."
    return said


@R.add("number", r"\b(\d{1,2})(?:[.:](\d\d))?\s?([aApP])\.?\s?[mM]\b(\.?)")
def _clock(m: re.Match) -> str:
    """'8.45 p.m.', '8:45 pm', '11 a.m.': a time of day (not a decimal), the letters read out."""
    minutes = int(m.group(2) or 0)
    said = n.cardinal(m.group(1)) + (f" {'oh ' if minutes < 10 else ''}{n.cardinal(minutes)}" if minutes else "")
    end = "." if m.group(4) and re.fullmatch(r"\s*", m.string[m.end() :]) else ""
    return f"{said} {m.group(3).upper()} M{end}"


@R.add("abbreviation", r"\b([ap])\.\s?m\.(?=\W|$)", re.IGNORECASE)
def _ampm(m: re.Match) -> str:
    return f"{m.group(1).upper()} M" + ("." if re.fullmatch(r"\s*", m.string[m.end() :]) else "")


@R.add("abbreviation", r"\b(?:No|Nos|no|nos|Nr|nr)\.\s?(?=\d)|#(?=\d)")
def _number_sign(m: re.Match) -> str:
    return "numbers " if m.group(0).lower().startswith("nos") else "number "


@R.add("abbreviation", r"\bSt\.(?=\s*(\S+))")
def _saint_or_street(m: re.Match) -> str:
    before = m.string[: m.start()].rstrip()
    follows = m.group(1)
    if before and before.split()[-1][:1].isupper() and not follows[:1].isupper() or not follows[:1].isalpha():
        return "Street" + (" " if follows[:1].isalnum() else "")
    return "Saint"


@R.add(
    "abbreviation",
    r"\betc\.(?=\W|$)|\b(?:Mr|Mrs|Messrs|Dr|Prof|Capt|Gen|Col|Lt|Sgt|Rev|Hon|Mt|Jr|Sr|Gov|Fig|fig|vs|cf|approx|viz|Ave|Rd)\.|\be\.\s?g\.|\bi\.\s?e\.",
)  # noqa: E501
def _abbreviation(m: re.Match) -> str:
    token = re.sub(r"\s", "", m.group(0))
    rest = m.string[m.end() :]
    if token == "etc.":
        return "et cetera" + ("." if re.match(r"\s*(?:$|[A-Z\"“”])", rest) else "")
    if token == "Dr." and re.match(r"\s*(?:$|[,.;:])", rest):
        return "Drive"
    return ABBREVIATIONS[token]


@R.add("abbreviation", rf"\b({'|'.join(MONTH_ABBR)})\.(?=\s?\d)")
def _month_abbr(m: re.Match) -> str:
    return MONTH_ABBR[m.group(1)]


# A word before a day that already does the work of "the" ("this very 2nd of October", "his 3rd of May").
_DETERMINER_BEFORE = re.compile(
    r"\b(?:the|this|that|very|every|each|next|last|our|his|her|my|your|their|its)\s+$", re.IGNORECASE
)


@R.add("date", rf"\b(\d{{1,2}})(?:st|nd|rd|th|d)?\s+(?:of\s+)?({_MONTH})(?:,?\s+(\d{{3,4}})\b)?")
def _day_month(m: re.Match) -> str | None:
    day = int(m.group(1))
    if not 1 <= day <= 31:
        return None
    month = MONTH_ABBR.get(m.group(2).rstrip("."), m.group(2).rstrip("."))
    the = "" if _DETERMINER_BEFORE.search(m.string[: m.start()]) else "the "
    said = f"{the}{n.ordinal(day)} of {month}"
    return said + (f" {n.year(m.group(3))}" if m.group(3) else "")


@R.add("date", rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th|d)?\b(?:,?\s+(\d{{3,4}})\b)?(?!\s*(?:%|°|[:.]\d))")
def _month_day(m: re.Match) -> str | None:
    day = int(m.group(2))
    if not 1 <= day <= 31:
        return None
    month = MONTH_ABBR.get(m.group(1).rstrip("."), m.group(1).rstrip("."))
    return f"{month} {n.ordinal(day)}" + (f", {n.year(m.group(3))}" if m.group(3) else "")


@R.add("date", rf"\b({_MONTH})\s+(\d{{3,4}})\b")
def _month_year(m: re.Match) -> str:
    return f"{m.group(1).rstrip('.')} {n.year(m.group(2))}"


@R.add("year", r"\b(1[0-9]|20)(\d0)s\b|(?<![\w'’])['’](\d0)s\b")
def _decade(m: re.Match) -> str:
    if m.group(3):
        return n.decade(1900 + int(m.group(3))).removeprefix("nineteen ")
    return n.decade(m.group(1) + m.group(2))


@R.add("year", r"(?<![\d,.])\b(1[1-9]\d\d|20\d\d)\s?[-–—]\s?(\d{2}|\d{4})\b(?![\d,.]\d|\d)")
def _year_range(m: re.Match) -> str | None:
    first, second = m.group(1), m.group(2)
    if len(second) == 2:
        second = first[:2] + second
    if int(second) <= int(first):
        return None
    return f"{n.year(first)} to {n.year(second)}"


@R.add("year", r"(?<![\d,.$£€¥])\b(\d{3,4})\s?(A\.\s?D\.|AD|A D|B\.\s?C\.|BC|B C|BCE|CE|C E|B C E)(?=\W|$)")
def _era_year(m: re.Match) -> str:
    return f"{n.year(m.group(1))} {' '.join(re.sub(r'[^A-Z]', '', m.group(2)))}"


@R.add("year", r"\b(A D|B C|C E|AD|BC|CE|[Aa]nno(?: Domini)?)\s(\d{1,4})\b(?![\d,.])")
def _year_after_era(m: re.Match) -> str:
    return f"{m.group(1)} {n.year(m.group(2))}"


@R.add("year", rf"\b({_YEAR_WORDS})(\s+)(1\d\d\d|20[0-4]\d)\b(?![\d,.]\d|\s?(?:{_UNIT_ALT})\b|%)")
def _year_in_context(m: re.Match) -> str:
    return f"{m.group(1)}{m.group(2)}{n.year(m.group(3))}"


@R.add("year", rf"(?<![\d,.$£€¥#-])\b(1[1-9]\d\d|20[0-3]\d)\b(?![\d,.]\d|\s?(?:{_UNIT_ALT})\b|%|-)")
def _bare_year(m: re.Match) -> str:
    return n.year(m.group(1))


@R.add("numeral", rf"\b(World War|Star Wars|Episode|Type|Class|Mark|Phase|Stage|Apollo|Super Bowl)\s({n.ROMAN_RE})\b")
def _roman_title(m: re.Match) -> str | None:
    value = n.roman_value(m.group(2))
    return None if value is None else f"{m.group(1)} {n.cardinal(value).title()}"


@R.add("numeral", rf"\b({_HEADING_WORDS})\s+({n.ROMAN_RE})\b(?!['’]\w)")
def _roman_heading_word(m: re.Match) -> str | None:
    value = n.roman_value(m.group(2))
    return None if value is None else f"{m.group(1)} {n.cardinal(value)}"


@R.add("numeral", rf"\b({_HEADING_WORDS})\s+0*(\d+)\b(?![.,:]\d)")
def _number_heading_word(m: re.Match) -> str:
    return f"{m.group(1)} {n.cardinal(m.group(2))}"


@R.add("numeral", rf"\b((?:{REGNAL})|[A-Z][a-z]+)\s({n.ROMAN_RE})\b(?!['’]\w)")
def _regnal(m: re.Match) -> str | None:
    numeral = m.group(2)
    value = n.roman_value(numeral)
    if value is None or not re.fullmatch(r"[IVX]+", numeral) or value > 39 or numeral == "X":
        return None
    if numeral == "I" and not re.fullmatch(REGNAL, m.group(1)):
        return None
    return f"{m.group(1)} the {n.ordinal(value).title()}"


@R.add("numeral", rf"^([\s/\\@_*#~|^`<>{{}}\-–—,;:!?.…]*)({n.ROMAN_RE})(\.?)(?=\s*[.,;:!?…]*\s*$|\s+[A-Z\"“‘(]|\.)")
def _roman_opening(m: re.Match) -> str | None:
    value = n.roman_value(m.group(2))
    whole = re.sub(r"^[\W_]+", "", m.string.strip()).rstrip(".")
    pronoun = m.group(2) == "I" and whole != "I" and not m.group(3)  # "I went", but "I. THE BURIAL" is a heading
    if value is None or pronoun or len(m.group(2)) == 1 and m.group(2) not in "IVX":
        return None  # "M. Waldman" is Monsieur, "C." an initial
    rest = m.string[m.end() :].strip()
    if re.search(r"[.!?;]\s*\S", rest) or re.search(r"[,;]|[.!?]$", rest) or len(rest.split()) > 10:
        return None  # a sentence, not a heading
    return f"{m.group(1)}{n.cardinal(value).title()}" + ("," if whole != m.group(2) else m.group(3))


@R.add("unit", r"(\d+(?:\.\d+)?)°\s?(\d+(?:\.\d+)?)?['′]?\s?(\d+(?:\.\d+)?)?(?:\"|″)?\s?([NSEW])\b")
def _coordinate(m: re.Match) -> str:
    said = f"{n.number(m.group(1))} degrees"
    if m.group(2):
        said += f" {n.number(m.group(2))} minutes"
    if m.group(3):
        said += f" {n.number(m.group(3))} seconds"
    return said + " " + {"N": "north", "S": "south", "E": "east", "W": "west"}[m.group(4)]


@R.add("unit", r"([$£€¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?(?:\s?(million|billion|thousand|m|bn|k)\b)?")
def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = CURRENCY[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    scale = {"m": "million", "bn": "billion", "k": "thousand"}.get(m.group(4) or "", m.group(4))
    if scale:
        amount = n.decimal(f"{whole}.{m.group(3)}") if m.group(3) else n.cardinal(whole)
        return f"{amount} {scale} {many}"
    said = f"{n.cardinal(whole)} {one if whole == 1 else many}"
    if m.group(3) and int(m.group(3)):
        cents = int(m.group(3))
        said += f" {n.cardinal(cents)} {sub_one if cents == 1 else sub_many}"
    return said


@R.add("unit", rf"(?<![\w.])(-|−)?(\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.(\d+))?\s?({_UNIT_ALT})(\.?)(?![\w/])")
def _unit(m: re.Match) -> str | None:
    unit, dot = m.group(4), m.group(5)
    if unit in ("in", "s", "h", "l", "g", "m", "min", "ha") and not (m.string[m.start(4) - 1].isdigit() or dot):
        if unit in ("in", "s", "h", "ha", "l"):  # "5 in the morning", "3 s", "2 h": too ambiguous with a space
            return None
    value = m.group(2).replace(",", "")
    amount = n.decimal(f"{value}.{m.group(3)}") if m.group(3) else n.number(value)
    one, many = UNITS[unit]
    said = f"{'minus ' if m.group(1) else ''}{amount} {one if amount == 'one' else many}"
    if dot and re.match(r"\s*(?:$|[A-Z\"“”])", m.string[m.end() :]):
        said += "."
    return said


@R.add("number", r"(?<![\w/])(\d{1,2}):(\d\d)(?![\d:])")
def _time_or_ratio(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    if minutes == 0:
        return f"{n.cardinal(hours)} o'clock" if hours <= 12 else f"{n.cardinal(hours)} hundred"
    if minutes < 10:
        return f"{n.cardinal(hours)} oh {n.cardinal(minutes)}"
    return f"{n.cardinal(hours)} {n.cardinal(minutes)}"


@R.add("number", r"(?<![\w/:])(\d+):(\d+)(?![\d:])")
def _ratio(m: re.Match) -> str:
    return f"{n.cardinal(m.group(1))} to {n.cardinal(m.group(2))}"


@R.add("number", r"(?<![\w/])(\d+)\s?/\s?(\d+)(?![\w/])|(?:(?<![\w.,])(\d+)\s?)?([½⅓⅔¼¾⅛])")
def _fraction(m: re.Match) -> str:
    if m.group(4):
        if m.group(3):  # a mixed number: "158½" -> "one hundred and fifty-eight and a half"
            return f"{n.cardinal(m.group(3))} and " + {"½": "a half", "⅓": "a third", "⅔": "two thirds",
                "¼": "a quarter", "¾": "three quarters", "⅛": "an eighth"}[m.group(4)]  # fmt: skip
        return {"½": "one half", "⅓": "one third", "⅔": "two thirds", "¼": "one quarter", "¾": "three quarters",
                "⅛": "one eighth"}[m.group(4)]  # fmt: skip
    top, bottom = int(m.group(1)), int(m.group(2))
    if bottom == 0 or bottom > 100:
        return f"{n.cardinal(top)} over {n.cardinal(bottom)}"
    name = {2: ("half", "halves"), 4: ("quarter", "quarters")}.get(bottom)
    if name is None:
        o = n.ordinal(bottom)
        name = (o, o + "s")
    return f"{n.cardinal(top)} {name[0] if top == 1 else name[1]}"


@R.add("number", r"(?<![\w+])(?:\+\d{1,3}[\s-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b|\b\d{3}-\d{4}\b")
def _phone(m: re.Match) -> str:
    said = n.digits(m.group(0))
    return ("plus " if m.group(0).startswith("+") else "") + said


@R.add("number", r"\b(\d+)(st|nd|rd|th|d)\b")
def _ordinal(m: re.Match) -> str:
    return n.ordinal(m.group(1))


@R.add("number", r"(?<![\w.,])(\d+(?:\.\d+)?)\s?[-–—]\s?(\d+(?:\.\d+)?)(?![\w.,]\d)")
def _range(m: re.Match) -> str:
    return f"{n.number(m.group(1))} to {n.number(m.group(2))}"


@R.add("number", r"(?:(?<=\s)|(?<=^)|(?<=[(\[]))[-−](?=\d)")
def _minus(m: re.Match) -> str:
    return "minus "


@R.add("number", r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
def _number(m: re.Match) -> str:
    s = m.group(0)
    return n.number(s.rstrip("."))


def _pauses(text: str) -> str:
    """Ellipses, dashes and parentheses as clause breaks (a comma), never dropped; a closing ellipsis a stop."""
    text = ELLIPSIS_RE.sub(lambda m: "." if re.fullmatch(r"[\s\"'”’)\]]*", m.string[m.end() :]) else ",", text)
    text = re.sub(r"\s*(?:—+|--+|\s[–-]\s|–(?=\s))\s*", ", ", text)
    text = re.sub(r"(?<=[A-Za-z])–(?=[A-Za-z])", " to ", text)
    text = re.sub(r"\s*[(\[]\s*", ", ", text)
    text = re.sub(r"\s*[)\]]\s*(?=[.!?,;:]|$)", "", text)
    return re.sub(r"\s*[)\]]\s*", ", ", text)


def _symbols(text: str) -> str:
    text = re.sub(r"(?<=[A-Za-z])\s?/\s?(?=[A-Za-z])", " ", text)
    text = re.sub(r"(?<=\w)[’‘`](?=\w)", "'", text)  # curly apostrophes inside words: one spelling
    text = re.sub(r"(?<=[sS])’(?=\s|$|[,.;:!?])", "'", text)  # parents’ house
    text = text.replace("&", " and ").replace("+", " plus ").replace("=", " equals ").replace("@", " at ")
    text = text.replace("%", " percent").replace("°", " degrees")
    text = re.sub(r"[\\_*#~|^`<>{}/]+", " ", text)
    return text


def normalize_en(text: str, log: Log | None = None) -> str:
    """English (or Latin-script) text as a narrator reads it; see the module docstring. Run to a fixed point
    (at most three passes), so a symbol dropped next to a word cannot leave something a second pass would read
    differently ("X/" -> "X")."""
    for _ in range(3):
        said = _normalize_en_once(text, log)
        if said == text:
            break
        text = said
    return text


def _normalize_en_once(text: str, log: Log | None = None) -> str:
    text = re.sub(r"(?<!\S)[/\\@_*#~|^`<>{}=+&]+(?!\S)", " ", text).strip()  # a lone symbol is not read
    text = re.sub(r"(?<=[a-z]{2})\.(?=\d)", ". ", text)  # "dust.30": a stop glued to a number (a line number)
    text = R.apply(text, log)
    text = _pauses(text)
    text = _symbols(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r",(?:\s*,)+", ",", text)
    text = re.sub(r",\s*(?=[.!?;:])", "", text)
    text = re.sub(r"^\s*,\s*", "", text)
    return re.sub(r"[^\S\n]+", " ", text).strip()
