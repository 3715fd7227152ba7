"""English number readings on top of num2words: cardinals without commas, years as a narrator says them,
ordinals, decimals, digit strings and Roman numerals."""

from __future__ import annotations

import re

from num2words import num2words

_DIGIT_NAMES = ["oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
ROMAN_RE = r"(?:M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))"


def cardinal(n: int | str) -> str:
    """'1,905' or 1905 -> 'one thousand nine hundred and five' (num2words, its commas dropped)."""
    value = int(str(n).replace(",", ""))
    return num2words(value).replace(",", "")


def ordinal(n: int | str) -> str:
    """21 -> 'twenty-first'."""
    return num2words(int(str(n).replace(",", "")), to="ordinal").replace(",", "")


def year(n: int | str) -> str:
    """A year as read aloud: 1905 -> 'nineteen oh five', 1900 -> 'nineteen hundred', 2011 -> 'twenty eleven',
    2005 -> 'two thousand five', 890 -> 'eight ninety' (num2words' year reading; its 'oh-' and 'and' dropped)."""
    value = int(n)
    if 2000 <= value <= 2009:
        return "two thousand" + (f" {cardinal(value - 2000)}" if value > 2000 else "")
    if value < 100:
        return cardinal(value)
    said = num2words(value, to="year").replace("oh-", "oh ").replace(" and ", " ")
    return said.replace(",", "")


def decade(n: int | str) -> str:
    """1920 (of '1920s') -> 'nineteen twenties'; 1900 -> 'nineteen hundreds'."""
    said = year(n)
    if said.endswith("y"):
        return said[:-1] + "ies"
    return said + ("es" if said.endswith("x") else "s")


def digits(s: str) -> str:
    """'007' -> 'oh oh seven': a digit string read digit by digit."""
    return " ".join(_DIGIT_NAMES[int(c)] for c in s if c.isdigit())


def decimal(s: str) -> str:
    """'3.14' -> 'three point one four'; '1,500.5' -> 'one thousand five hundred point five'."""
    whole, _, frac = s.replace(",", "").partition(".")
    head = cardinal(whole) if whole else "zero"
    if not frac:
        return head
    return f"{head} point " + " ".join("zero" if c == "0" else _DIGIT_NAMES[int(c)] for c in frac)


def number(s: str) -> str:
    """A plain written number: grouped ('1,500'), decimal, or with a leading zero (read digit by digit)."""
    grouped = re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", s) is not None
    s = s.replace(",", "") if grouped else s
    if "." in s:
        return decimal(s)
    if len(s) > 1 and s.startswith("0"):
        return digits(s)
    if len(s) >= 7 and not grouped:  # an unseparated digit string (a reference, an account): digit by digit
        return digits(s)
    return cardinal(s)


def roman_value(s: str) -> int | None:
    """'XII' -> 12; None unless `s` is a well-formed Roman numeral."""
    if not s or not re.fullmatch(ROMAN_RE, s.upper()):
        return None
    total, prev = 0, 0
    for c in reversed(s.upper()):
        v = _ROMAN[c]
        total = total - v if v < prev else total + v
        prev = max(prev, v)
    return total or None
