"""What every language's book-text normaliser shares: the rewrite log, protected spans, web addresses and code
identifiers, pauses from punctuation, and the symbols no engine should ever read.

A rule is a regular expression and a function from its match to the words a narrator says; `Rules.apply` runs
each rule in order and records every rewrite as (class, source, reading) so `bench/normalize_report.py` can
count them. Text between PROTECT_OPEN and PROTECT_CLOSE (a job's pronunciation replacements) is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from batchtts.jobs.markup import LINE_MARKER, SCENE_MARKER

# Private-use characters around text the normaliser must leave as it is (a pronunciation's replacement).
PROTECT_OPEN, PROTECT_CLOSE = "\ue000", "\ue001"
_PROTECTED_RE = re.compile(f"{PROTECT_OPEN}[^{PROTECT_CLOSE}]*{PROTECT_CLOSE}")

Log = list[tuple[str, str, str]]  # (class, source text, reading)


@dataclass
class Rules:
    """An ordered list of (class, pattern, reading function); a function may return None to leave a match.
    Patterns are compiled with re.ASCII: `\\b` and `\\w` see Latin words and digits, so `见https` and `2011年`
    have the boundaries a reader sees."""

    rules: list[tuple[str, re.Pattern, Callable[[re.Match], str | None]]] = field(default_factory=list)

    def add(self, cls: str, pattern: str, flags: int = 0):
        def register(fn: Callable[[re.Match], str | None]):
            self.rules.append((cls, re.compile(pattern, flags | re.ASCII), fn))
            return fn

        return register

    def apply(self, text: str, log: Log | None = None) -> str:
        for cls, pattern, fn in self.rules:

            def sub(m: re.Match, cls: str = cls, fn=fn) -> str:
                said = fn(m)
                if said is None:
                    return m.group(0)
                if log is not None and said != m.group(0):
                    log.append((cls, m.group(0), said))
                return said

            text = pattern.sub(sub, text)
        return text


def unprotected(text: str, fn: Callable[[str], str]) -> str:
    """`fn` applied to each stretch of `text` outside protected spans; the protection marks are removed."""

    def part(s: str) -> str:  # the spaces around a stretch stay, so it does not run into its protected neighbour
        if not s.strip():  # only whitespace: nothing to read, and nothing to pad (a second pass adds none)
            return s
        said = fn(s)
        lead, trail = s[: len(s) - len(s.lstrip())], s[len(s.rstrip()) :]
        return (" " if lead and said else "") + said + (" " if trail and said else "")

    out, pos = [], 0
    for m in _PROTECTED_RE.finditer(text):
        out += [part(text[pos : m.start()]), m.group(0)[1:-1]]
        pos = m.end()
    out.append(part(text[pos:]))
    return "".join(out).replace(PROTECT_OPEN, "").replace(PROTECT_CLOSE, "")


_URL_CHARS = "[^\\s<>\"'“”‘’（）()，。；！？\u3000-\u9fff\uff00-\uffef]"
_URL_END = "[^\\s<>\"'“”‘’（）()，。；！？.,;:!?\u3000-\u9fff\uff00-\uffef]"
URL_RE = re.compile(
    rf"(?<![A-Za-z0-9@.])(?:(?:https?://|ftp://|www\.){_URL_CHARS}*{_URL_END}"
    rf"|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|org|net|io|cn|edu|gov|dev|app)(?:/{_URL_CHARS}*{_URL_END})?"
    r"(?![A-Za-z0-9@]))",
    re.IGNORECASE,
)
EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?![A-Za-z0-9-])")
# console.log, document.getElementById(), snake_case_name, __init__: code, not prose.
CODE_RE = re.compile(
    r"(?<![A-Za-z0-9_.$])(?:[A-Za-z$][\w$]*(?:\.[A-Za-z$][\w$]*)+(?:\(\))?|[A-Za-z0-9$]+(?:_[A-Za-z0-9$]+)+"
    r"|__\w+__|[A-Za-z_$][\w$]*\(\))(?![A-Za-z0-9_$])"
)


def url_host(url: str) -> str:
    """The host of a URL, without scheme, `www.`, port, path, query or a trailing dot."""
    host = re.sub(r"^(?:https?|ftp)://", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#:]", host, maxsplit=1)[0].rstrip(".")
    return re.sub(r"^www\.", "", host, flags=re.IGNORECASE)


def code_words(ident: str) -> list[str]:
    """The spoken parts of a code identifier: dots, underscores and call brackets dropped, camelCase split."""
    ident = ident.removesuffix("()")
    parts = []
    for piece in ident.split("."):
        words = [w for w in re.split(r"[_$]+", piece) if w]
        parts.append(" ".join(words))
    return [p for p in parts if p]


# An ellipsis as books print it: `…`, `...`, `. . .`.
ELLIPSIS_RE = re.compile(r"…+|\.{3,}|(?:\.\s){2}\.")


def drop_markers(text: str) -> str:
    """The verse-line and scene markers of jobs/markup, as plain spaces (their pauses are set by the splitter)."""
    return text.replace(LINE_MARKER, " ").replace(SCENE_MARKER, " ")
