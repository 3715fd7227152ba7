"""Properties of the book-text normaliser and the chunks it feeds, for both engines: no ASCII digit and none of
`/ \\ @ _ * # ~` reach a chunk's text, normalisation is idempotent, and no chunk crosses a paragraph or a heading."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchtts.engines.embedded.engine import EmbeddedEngine
from batchtts.engines.glmtts.engine import GlmttsEngine
from batchtts.jobs.types import Job, Source
from batchtts.text.chunkrule import split_by_rule
from batchtts.text.chunks import make_chunks
from batchtts.text.normalize import normalize
from batchtts.text.split import split_text

FORBIDDEN = re.compile(r"[0-9/\\@_*#~]")
WORDS = ["in", "Chapter", "St.", "No.", "Henry", "VIII", "XII", "I", "May", "km", "m.", "ft", "AD", "B.C.", "etc.",
         "e.g.", "www.example.com/a", "a@b.cn", "console.log", "v2.0", "的", "年", "第", "回", "你好", "天气", "度",
         "and/or", "parents’", "…", "—", "(", ")", "：", "，", "。", ".", ",", "-", "−", "%", "$", "°",
         "'"]  # fmt: skip
token = st.one_of(
    st.sampled_from(WORDS),
    st.from_regex(r"[0-9]{1,5}(?:[.,:/-][0-9]{1,4})?", fullmatch=True),
    st.sampled_from(list("/\\@_*#~")),
    st.text(alphabet="abcXYZ0123456789 /\\@_*#~.,年月", min_size=1, max_size=6),
)
sentence = st.lists(token, min_size=1, max_size=12).map(" ".join)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _job(text: str) -> Job:
    return Job(id="p", text=text, output=Path("p.wav"), source=Source(Path("jobs.jsonl"), 1))


def _chunks(text: str, engine) -> list:
    rule = engine.chunk_rule
    segments = split_by_rule(text, rule) if rule else split_text(text, engine.max_chars)
    return make_chunks(_job(text), segments, "v", engine.name, "r", {}, engine.speakable_text)


@SETTINGS
@given(sentence, st.sampled_from(["en", "zh"]))
def test_no_digit_or_symbol_survives_normalisation(text: str, language: str) -> None:
    said = normalize(text, language)
    assert not FORBIDDEN.search(said), said


@SETTINGS
@given(st.lists(sentence, min_size=1, max_size=3).map("\n\n".join))
def test_no_digit_or_symbol_reaches_a_chunk_for_either_engine(text: str) -> None:
    for engine in (EmbeddedEngine, GlmttsEngine):
        for chunk in _chunks(text, engine):
            assert not FORBIDDEN.search(chunk.text), (engine.name, chunk.text)


@SETTINGS
@given(sentence, st.sampled_from(["en", "zh"]))
@example(" ", "en")  # whitespace alone was padded by each pass
def test_normalisation_is_idempotent(text: str, language: str) -> None:
    once = normalize(text, language)
    assert normalize(once, language) == once


paragraph = st.lists(st.sampled_from(["The cat sat.", "It ran far away, and then", "1905 was a year.", "I",
                                      "第一回", "他走了。", "Oh.", "诗曰：", "IX The Mock Turtle", "Chapter 01"]),
                     min_size=1, max_size=6).map(" ".join)  # fmt: skip


@SETTINGS
@given(st.lists(paragraph, min_size=2, max_size=5))
def test_no_chunk_crosses_a_paragraph_or_heading(paragraphs: list[str]) -> None:
    text = "\n\n".join(paragraphs)
    starts = [m.end() for m in re.finditer(r"\n\n", text)]
    for engine in (EmbeddedEngine, GlmttsEngine):
        rule = engine.chunk_rule
        for seg in split_by_rule(text, rule) if rule else split_text(text, engine.max_chars):
            inner = text[seg.start : seg.end].rstrip()
            assert "\n\n" not in inner, (engine.name, inner)
            assert not any(seg.start < s < seg.start + len(inner) for s in starts)


@SETTINGS
@given(sentence, st.sampled_from(["en", "zh"]))
@example("' '", "en")  # quotes that meet once the space between them goes
def test_glmtts_reading_is_idempotent(text: str, language: str) -> None:
    once = GlmttsEngine.speakable_text(normalize(text, language), language)
    assert GlmttsEngine.speakable_text(once, language) == once
