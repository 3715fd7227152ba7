"""Issue 16, defect 8: splitting is linear in the text's length, shown by counting work rather than timing it."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from batchtts.text import split
from tests.conftest import ROOT

SAMPLE = (
    "Dr. Smith met Mr. T. S. Eliot at St. Mary's on Jan. 3, e.g. before noon. The U.S.A. sent no. 4 to them. "
    "It cost $3.50, approx. twice the fee. 灯塔亮了。他走上楼梯！Then he slept.\n\n"
)


class CountingText(str):
    """A str that counts the characters its Python-level reads touch (indexing and slicing)."""

    reads = 0

    def __getitem__(self, item):
        got = str.__getitem__(self, item)
        CountingText.reads += len(got) if isinstance(item, slice) else 1
        return got


class PatternSpy:
    """Wraps a compiled pattern and counts the span of text each call may scan."""

    spans = 0

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def __getattr__(self, name: str):
        method = getattr(self.pattern, name)
        if not callable(method):
            return method

        def call(string, *args, **kwargs):
            pos = args[0] if args else kwargs.get("pos", 0)
            endpos = args[1] if len(args) > 1 else kwargs.get("endpos", len(string))
            PatternSpy.spans += max(0, min(endpos, len(string)) - pos)
            return method(string, *args, **kwargs)

        return call


def _work(monkeypatch, n_chars: int) -> int:
    for name in dir(split):
        if name.endswith("_RE") and isinstance(getattr(split, name), re.Pattern):
            monkeypatch.setattr(split, name, PatternSpy(getattr(split, name)))
    text = CountingText((SAMPLE * (n_chars // len(SAMPLE) + 1))[:n_chars])
    CountingText.reads = PatternSpy.spans = 0
    segments = split.split_text(text, 300)
    assert "".join(text[s.start : s.end] for s in segments) == text
    return CountingText.reads + PatternSpy.spans


def test_splitting_work_grows_linearly_with_the_text(monkeypatch):
    small, large = _work(monkeypatch, 20_000), _work(monkeypatch, 80_000)
    assert large / small < 5, f"4x the text costs {large / small:.1f}x the work (quadratic would be ~16x)"


def test_the_example_book_splits_the_same_with_the_linear_check():
    """Same segments as the regex the walk-back replaces, on the example book and the sample."""
    old = re.compile(r"([\w.]+)\.$")
    texts = [p.read_text(encoding="utf-8") for p in sorted(Path(ROOT, "examples", "book").glob("*.txt"))] + [SAMPLE]
    for text in texts:
        for m in re.finditer(r"\.", text):
            found = old.search(text, 0, m.start() + 1)
            assert split._word_before(text, m.start()) == (found.group(1) if found else "")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab Z._-é١²\n\t!?\"'")), max_size=20), min_size=2, max_size=4))
def test_word_before_matches_the_old_regex(parts):
    text = ".".join(parts)  # at least one period, at any place, each one checked
    old = re.compile(r"([\w.]+)\.$")
    periods = [i for i, ch in enumerate(text) if ch == "."]
    assert periods
    for i in periods:
        found = old.search(text, 0, i + 1)
        assert split._word_before(text, i) == (found.group(1) if found else "")
