"""The Chinese book-text normaliser: numbers read by cn2an (years digit by digit, quantities as numbers), units,
web addresses and code as a Chinese narrator says them, and pauses from the book's punctuation."""

from __future__ import annotations

import re

import cn2an

from batchtts.text.normalize.common import CODE_RE, ELLIPSIS_RE, EMAIL_RE, URL_RE, Log, Rules, code_words, url_host

R = Rules()
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNITS = {
    "km": "公里", "cm": "厘米", "mm": "毫米", "m": "米", "kg": "千克", "mg": "毫克", "g": "克", "t": "吨",
    "ml": "毫升", "l": "升", "L": "升", "°C": "摄氏度", "℃": "摄氏度", "°F": "华氏度", "°": "度", "%": "",
    "KB": "KB", "MB": "MB", "GB": "GB", "TB": "TB", "kb": "KB", "ms": "毫秒", "s": "秒", "h": "小时",
    "min": "分钟", "km/h": "公里每小时", "m/s": "米每秒",
}  # fmt: skip
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_DIGITS = "零一二三四五六七八九"


def direct(s: str) -> str:
    """'2011' -> '二零一一': digit by digit."""
    return "".join(_DIGITS[int(c)] for c in s if c.isdigit())


def number(s: str) -> str:
    """'12345' -> '一万二千三百四十五', '3.14' -> '三点一四', '007' -> '零零七' (a leading zero: digit by digit)."""
    s = s.replace(",", "")
    whole, _, frac = s.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) > 16:
        head = direct(whole)
    else:
        head = cn2an.an2cn(whole or "0", "low")
    return head + ("点" + direct(frac) if frac else "")


@R.add("url", URL_RE.pattern, re.IGNORECASE)
def _url(m: re.Match) -> str:
    return "点".join(url_host(m.group(0)).split("."))


@R.add("url", EMAIL_RE.pattern)
def _email(m: re.Match) -> str:
    user, _, host = m.group(0).partition("@")
    return "点".join(user.split(".")) + "艾特" + "点".join(host.split("."))


@R.add("code", r"\b[vV](\d+(?:\.\d+)+)\b")
def _version(m: re.Match) -> str:
    return m.group(0)[0] + "点".join(
        direct(p) if len(p) > 1 and p[0] == "0" else number(p) for p in m.group(1).split(".")
    )  # noqa: E501


@R.add("code", r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])")
def _dotted(m: re.Match) -> str:
    return "点".join(number(p) for p in m.group(0).split("."))


@R.add("code", CODE_RE.pattern)
def _code(m: re.Match) -> str | None:
    token = m.group(0)
    if "_" not in token and not token.endswith("()") and all(len(p) <= 2 for p in token.split(".")):
        return None
    return "点".join(code_words(token))


@R.add("code", r"(?<=[A-Za-z])-?(\d{3,})(?![\d.])")
def _identifier_digits(m: re.Match) -> str:
    """`ES2016`, `ECMA-262`: digits that are part of a name, read digit by digit."""
    return direct(m.group(1))


@R.add("year", rf"(?<!\d)(\d{{4}})\s*(?=年(?![{_HAN}]{{0,1}}[前后间来]|级))|(?<!\d)(\d{{2,4}})\s*(?=年代)")
def _year(m: re.Match) -> str:
    """`2011 年` and `1990年代`: a year, digit by digit (`15 年`, a duration, is a number)."""
    return direct(m.group(1) or m.group(2))


@R.add("date", r"(?<![\d.])(\d{1,2})\s*(?=[月日号])")
def _month_day(m: re.Match) -> str:
    return number(m.group(1))


@R.add("number", r"(?<![\w.])(\d{1,2}):(\d\d)(?![\d:])")
def _time(m: re.Match) -> str:
    minutes = int(m.group(2))
    return number(m.group(1)) + "点" + (number(m.group(2)) + "分" if minutes else "")


@R.add("number", r"(?<![\w.:])(\d+):(\d+)(?![\d:])")
def _ratio(m: re.Match) -> str:
    return number(m.group(1)) + "比" + number(m.group(2))


@R.add("number", r"(?<![\w./])(\d+)\s?/\s?(\d+)(?![\w/])")
def _fraction(m: re.Match) -> str:
    return number(m.group(2)) + "分之" + number(m.group(1))


@R.add("number", r"(?<![\w.])(\d{7,})(?![\d.])|(?<![\w.])(?:\+?\d{1,3}[\s-])?\d{3,4}-\d{4}(?:-\d{4})?(?![\d])")
def _digit_string(m: re.Match) -> str:
    return ("加" if m.group(0).startswith("+") else "") + direct(m.group(0))


@R.add("unit", rf"([-−])?(\d+(?:\.\d+)?)\s?({_UNIT_ALT})(?![A-Za-z])")
def _unit(m: re.Match) -> str:
    sign = "负" if m.group(1) else ""
    if m.group(3) == "%":
        return "百分之" + sign + number(m.group(2))
    return sign + number(m.group(2)) + _UNITS[m.group(3)]


@R.add("number", r"(\d+(?:\.\d+)?)\s?[-~～至—–]\s?(\d+(?:\.\d+)?)")
def _range(m: re.Match) -> str:
    return number(m.group(1)) + "到" + number(m.group(2))


@R.add("number", r"(?:(?<=^)|(?<=[\s(（:：，,、=]))[-−](?=\d)|(?<=[" + _HAN + r"])\s?[-−](?=\d)")
def _minus(m: re.Match) -> str:
    return "负"


@R.add("number", r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
def _number(m: re.Match) -> str:
    return number(m.group(0))


def _pauses(text: str) -> str:
    """Ellipses, dashes, brackets and spaces between Chinese words as a clause break (，), never dropped."""
    text = text.replace("．", "。")
    text = ELLIPSIS_RE.sub(lambda m: "。" if re.fullmatch(r"[\s\"'”’」』）)]*", m.string[m.end() :]) else "，", text)
    text = re.sub(r"—{1,}|--+|–", "，", text)
    text = re.sub(r"[（(\[【〔]", "，", text)
    text = re.sub(r"[）)\]】〕](?=[。！？!?，,；;：:]|$)", "", text)
    text = re.sub(r"[）)\]】〕]", "，", text)
    return re.sub(rf"(?<=[{_HAN}])[^\S\n]+(?=[{_HAN}])", "，", text)


def normalize_zh(text: str, log: Log | None = None) -> str:
    """Chinese text (Latin words inside left for the engine) as a narrator reads it."""
    text = _pauses(text)
    text = R.apply(text, log)
    text = re.sub(rf"(?<=[{_HAN}])[^\S\n]+|[^\S\n]+(?=[{_HAN}])", "", text)
    text = re.sub(r"(?<=[A-Za-z])\s?/\s?(?=[A-Za-z])", " ", text)
    text = text.replace("/", "每").replace("&", "和").replace("@", "艾特").replace("+", "加").replace("=", "等于")
    text = re.sub(r"[\\_*#~～|^`<>{}]+", " ", text)
    text = re.sub(r"[，,](?:\s*[，,])+", "，", text)
    text = re.sub(r"[，,]\s*(?=[。！？；])", "", text)
    text = re.sub(r"^\s*[，,]\s*", "", text)
    text = re.sub(rf"(?<=[{_HAN}，。！？；：、])[^\S\n]+|[^\S\n]+(?=[{_HAN}，。！？；：、])", "", text)
    return re.sub(r"[^\S\n]+", " ", text).strip()
