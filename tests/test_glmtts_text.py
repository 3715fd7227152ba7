"""GLM-TTS's text frontend (official text_normalize via wetext) and its chunk rule (30-60 units), without weights."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtts.engines.glmtts import GlmttsEngine
from batchtts.engines.glmtts.text_frontend import CHUNK_RULE, PUNCT, length_units, normalize
from batchtts.text.chunkrule import ChunkRule, split_by_rule
from batchtts.text.chunks import make_chunks
from batchtts.text.split import COMMA, PARAGRAPH, PAUSE, split_text
from tests.test_split import texts


@pytest.fixture(scope="module")
def lib():
    """The library's own normalisers, configured as the official TextFrontEnd configures WeTextProcessing."""
    from wetext import Normalizer

    zh = Normalizer(lang="zh", operator="tn", full_to_half=True, remove_erhua=False, remove_interjections=False)
    return zh, Normalizer(lang="en", operator="tn")


ZH = [  # decimals, years, dates, times, percentages, currency, full-width punctuation
    (
        "1921年5月3日下午4点45分，浪有3米高，涨了31.5%。",
        "一九二一年五月三日下午四点四十五分，浪有三米高，涨了百分之三十一点五。",
    ),
    ("电话13812345678，时间10:30~11:00！", "电话幺三八幺二三四五六七八，时间十点三十分到十一点。"),
    ("价格是12.50元（含税）。", "价格是十二点五零元含税。"),
    ("他说：“今天下雨。”", "他说，今天下雨。"),
]
EN = [  # decimals, years, dates, times, currency, percentages, abbreviations
    (
        "On the 3rd of May, 1921, at 4:45 p.m., it cost $31.5.",
        "on the third of may, nineteen twenty one, at four forty five pm, it cost thirty one point five dollars.",
    ),
    (
        "Dr. Smith paid £3.50 for 25% of it on 12/25/2023!",
        "doctor smith paid three point five pounds for twenty five percent of it on the twenty fifth of december "
        "twenty twenty three.",
    ),
    ("It's 10:30 a.m. in the U.S.A., Mr. Jones", "it's ten thirty am in the usa, mister jones."),
    ("A well-known (odd) [case] 😀 of 3*4 things", "a well known odd case of three times four things."),
]


def _bare(text: str) -> str:
    """Words only: what the official symbol rules leave of the library's output, for comparison."""
    return re.sub(r"[\W_]+", "", text.lower())


@pytest.mark.parametrize(("raw", "want"), ZH)
def test_chinese_is_spelled_out_as_the_library_spells_it(lib, raw, want):
    got = normalize(raw, "zh")
    assert got == want
    assert not re.search(r"\d", got) and got[-1] == "。"
    zh, _ = lib
    if "（" not in raw:  # brackets are GLM-TTS's own rules on top of the library
        assert _bare(got) == _bare(zh.normalize(raw))


@pytest.mark.parametrize(("raw", "want"), EN)
def test_english_is_spelled_out_as_the_library_spells_it_then_lowercased(lib, raw, want):
    got = normalize(raw, "en")
    assert got == want
    _, en = lib
    if "(" not in raw:
        assert _bare(got) == _bare(en.normalize(raw.replace("'", "’")))


def test_mixed_text_takes_the_chinese_path_and_symbols_follow_the_official_rules():
    assert normalize("第3章 The year 2.5 percent", "zh") == "第三章the year二点五percent。"
    assert normalize("α粒子的速度是3x10^5米/秒", "zh") == "阿尔法粒子的速度是三乘十的五次方米每秒。"
    assert normalize("噢，我知道了！！", "zh") == "哦，我知道了。"  # custom_replace, ！ -> 。
    assert normalize("Wait... what?!", "en") == "wait. what."  # runs collapse, the last mark stays, ! -> .
    assert normalize("Is it?", "en") == "is it?"
    assert normalize("no punctuation at all", "en") == "no punctuation at all."
    assert normalize("line one\nline two", "en") == "line one. line two."


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "b",
                " ",
                "12",
                ",",
                ".",
                "!",
                "?",
                "-",
                "'",
                "中文",
                "。",
                "，",
                "！",
                "（",
                "）",
                "$",
                "%",
                "hello",
                " world",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_a_normalised_text_always_ends_in_terminal_punctuation(raw):
    out = normalize(raw, "en")
    assert out and out[-1] in ".。?？" and "!" not in out and "！" not in out


def test_length_units_count_as_the_official_splitter():
    assert length_units("中文，") == 3  # a character or a mark is one unit
    assert length_units("hello world") == pytest.approx(0.7 * 2 + 0.7 * 1)  # 0.7 per syllable
    assert length_units("don't 42") == 1 + 2  # a word with an apostrophe counts 1, digits 1 each
    assert length_units("ab中") == pytest.approx(0.7 + 1)


ZH_BOOK = (
    "她推开门，看见院子里的桃花已经开了，风一吹，花瓣就落在青石板上。"
    "远处传来钟声，一下又一下，像是在数着日子。"
    "她想起小时候，祖母总是坐在这棵树下，给她讲那些很长很长的故事，故事里有山，有海，有会说话的狐狸，还有从来没有人去过的地方，她记得每一个故事的开头，却总是记不住结尾。"
    "好。"
    "后来祖母走了，树还在，故事却没有人再讲了，她只好一个人坐在树下，听风，看花，等天黑。"
)


def test_chinese_chunks_stay_within_the_engines_maximum_and_end_at_punctuation():
    segs = split_by_rule(ZH_BOOK, CHUNK_RULE)
    assert "".join(ZH_BOOK[s.start : s.end] for s in segs) == ZH_BOOK  # every character, in order
    for s in segs:
        assert length_units(s.text) <= CHUNK_RULE.max_units
        assert s.text[-1] in PUNCT
    assert all(length_units(s.text) >= CHUNK_RULE.min_units for s in segs[:-1])
    assert any(s.brk == COMMA for s in segs)  # a long sentence is cut at a clause mark
    assert "好。" not in [s.text for s in segs]  # a short sentence is merged with a neighbour
    assert max(length_units(s.text) for s in split_text(ZH_BOOK, 150)) > 60  # what a 150-character cut allowed


def test_short_english_sentences_merge_and_paragraphs_and_pauses_are_never_crossed():
    text = "Yes. No. Maybe so. I will go now. [pause:2] Then it rained.\n\nA new paragraph starts here."
    segs = split_by_rule(text, CHUNK_RULE)
    assert [s.text for s in segs] == [
        "Yes. No. Maybe so. I will go now.",
        "Then it rained.",
        "A new paragraph starts here.",
    ]
    assert [s.brk for s in segs] == [PAUSE, PARAGRAPH, "end"] and segs[0].pause == 2.0


def test_a_long_unpunctuated_run_is_cut_within_the_maximum():
    text = " ".join(["word"] * 200) + "."
    segs = split_by_rule(text, ChunkRule(length_units, 30, 60))
    assert len(segs) > 1 and all(length_units(s.text) <= 60 for s in segs)
    assert "".join(text[s.start : s.end] for s in segs) == text


def test_other_engines_split_exactly_as_before():
    sample = "One. Two is here, and three, and four.\n\nFive " + "x" * 400 + " six."
    assert [s.text for s in split_text(sample, 150)] == texts(sample, 150)


def test_chunk_text_is_the_normalised_text_and_goes_into_the_key():
    from batchtts.jobs.types import Job

    job = Job("j", "", Path("j.wav"), None)
    segs = split_by_rule("It cost $5 in 1999.\n\n价格是12元。", GlmttsEngine.chunk_rule)
    plain = make_chunks(job, segs, "v", "glmtts", "r", {})
    spoken = make_chunks(job, segs, "v", "glmtts", "r", {}, GlmttsEngine.speakable_text)
    assert [c.text for c in spoken] == [normalize(c.text, c.language) for c in plain]
    assert spoken[0].text == "it cost five dollars in nineteen ninety nine." and spoken[1].text == "价格是十二元。"
    assert [c.key for c in spoken] != [c.key for c in plain] and spoken[0].source_text == plain[0].source_text


def test_a_chinese_sentence_is_not_merged_with_english_ones_so_each_takes_its_own_path():
    segs = split_by_rule("Good morning, Mr. Linn. 早上好，林老板。 He laughed.", CHUNK_RULE)
    assert [s.text for s in segs] == ["Good morning, Mr. Linn.", "早上好，林老板。", "He laughed."]
    assert normalize(segs[0].text, "en") == "good morning, mister linn."


def test_batchtts_chunks_shows_the_example_book_with_every_number_spelled_out(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from batchtts.cli import main
    from tests.conftest import ROOT

    monkeypatch.setenv("GLMTTS_MODEL_DIR", str(tmp_path / "no-weights-needed"))
    result = CliRunner().invoke(main, ["chunks", str(ROOT / "jobs" / "book.jsonl"), "--engine", "glmtts", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    sources = "".join(r["source"] for r in rows)
    assert re.search(r"\d", sources) and not any(re.search(r"\d", r["text"]) for r in rows)
    assert "one hundred and twelve" in " ".join(r["text"] for r in rows)
    assert all(r["text"][-1] in ".?。？" for r in rows)
