"""Chunking a book's structure: short headings stay their own chunk, scene breaks and verse lines give their pauses,
`．` ends a sentence, colons are a clause break, and Chinese chunks keep within GLM-TTS's 60 units without ending on
a tiny clause. Pronunciations apply before the normaliser, subtitle text is the book's own."""

from __future__ import annotations

from pathlib import Path

from batchtts.engines.embedded.engine import EmbeddedEngine
from batchtts.engines.glmtts.engine import GlmttsEngine
from batchtts.engines.glmtts.text_frontend import CHUNK_RULE, length_units
from batchtts.jobs.types import Job, Pauses, Source
from batchtts.text.chunkrule import split_by_rule
from batchtts.text.chunks import make_chunks
from batchtts.text.split import PAUSE, split_text


def _chunks(text: str, engine, **job):
    rule = engine.chunk_rule
    segments = split_by_rule(text, rule) if rule else split_text(text, engine.max_chars)
    j = Job(id="b", text=text, output=Path("b.wav"), source=Source(Path("jobs.jsonl"), 1), **job)
    return make_chunks(j, segments, "v", engine.name, "r", {}, engine.speakable_text)


def test_short_heading_is_its_own_chunk_in_every_language() -> None:
    for engine in (EmbeddedEngine, GlmttsEngine):
        en = _chunks("I\n\nDown the Rabbit-Hole\n\nAlice was beginning to get very tired.", engine)
        assert [c.source_text for c in en][:2] == ["I", "Down the Rabbit-Hole"]
        zh = _chunks("第一回\n\n灵根育孕源流出，心性修持大道生。", engine)
        assert zh[0].source_text == "第一回"


def test_heading_never_merges_with_the_paragraph_after() -> None:
    text = "第一回 灵根育孕源流出 心性修持大道生\n\n诗曰：\n\n混沌未分天地乱，茫茫渺渺无人见。"
    chunks = _chunks(text, GlmttsEngine)
    assert [c.text for c in chunks] == [
        "第一回，灵根育孕源流出，心性修持大道生。",
        "诗曰。",
        "混沌未分天地乱，茫茫渺渺无人见。",
    ]


def test_full_width_stop_ends_a_sentence_for_the_default_engine() -> None:
    sentence = "士隐意欲也跟了过去，方举步时，忽听一声霹雳，有若山崩地陷．"
    chunks = _chunks(sentence * 12, EmbeddedEngine)
    assert len(chunks) == 12
    assert all(len(c.source_text) == len(sentence) for c in chunks)


def test_chinese_chunks_stay_within_60_units_and_never_end_on_a_tiny_clause() -> None:
    text = ("再五千四百岁，正当子会，轻清上腾，有日，有月，有星，有辰。日、月、星、辰，谓之四象。"
            "故曰，天开于子。又经五千四百岁，子会将终，近丑之会，而逐渐坚实。")  # fmt: skip
    chunks = _chunks(text, GlmttsEngine)
    for c in chunks:
        assert length_units(c.text) <= CHUNK_RULE.max_units
        last_clause = c.text.rstrip("。").replace("、", "，").split("，")[-1]
        assert len(last_clause) > 4 or c.brk != "comma", c.text
    assert not any(c.text.startswith(("有月", "月，")) for c in chunks)


def test_colon_is_a_clause_break_not_a_stop_inside_the_chunk() -> None:
    chunks = _chunks("他对众人说道：我们明天一早就出发，到城外的山上去看日出，大家都要早些起来。", GlmttsEngine)
    assert chunks[0].text.startswith("他对众人说道，我们明天")


def test_scene_break_lines_give_the_scene_pause() -> None:
    for mark in ("[scene]", "* * *", "***", "⁂", "#", "~~~", "——", "o o o"):
        chunks = _chunks(f"The door closed.\n\n{mark}\n\nMorning came.", EmbeddedEngine, pauses=Pauses(scene=2.5))
        assert [c.source_text for c in chunks] == ["The door closed.", "Morning came."], mark
        assert (chunks[0].brk, chunks[0].pause) == (PAUSE, 2.5), mark


def test_verse_lines_pause_without_inventing_a_stop() -> None:
    text = "April is the cruellest month, breeding[line]\nLilacs out of the dead land, mixing[line]\nMemory and desire."
    chunks = _chunks(text, EmbeddedEngine)
    assert len(chunks) == 1
    assert (
        chunks[0].text
        == "April is the cruellest month, breeding, Lilacs out of the dead land, mixing, Memory and desire."
    )
    assert "[line]" not in chunks[0].source_text
    long = "A line of verse that runs on and on[line]\n" * 12 + "the end."
    cut = _chunks(long, EmbeddedEngine, pauses=Pauses(line=0.4))
    assert len(cut) > 1
    assert (cut[0].brk, cut[0].pause) == (PAUSE, 0.4)
    assert not cut[0].text.endswith(".")


def test_pronunciations_apply_before_the_normaliser_and_are_not_read_again() -> None:
    chunks = _chunks("In 1905 Henry VIII came.", EmbeddedEngine, pronunciations={"1905": "nineteen five"})
    assert chunks[0].text == "In nineteen five Henry the Eighth came."
    chunks = _chunks("Henry VIII came.", EmbeddedEngine, pronunciations={"Henry VIII": "King Hal"})
    assert chunks[0].text == "King Hal came."


def test_chunk_keeps_the_books_own_text_for_subtitles() -> None:
    chunks = _chunks("In 1905 he walked 20 m. to No. 7.", GlmttsEngine)
    assert chunks[0].source_text == "In 1905 he walked 20 m. to No. 7."
    assert chunks[0].text == "in nineteen oh five he walked twenty metres to number seven."


def test_ellipsis_before_a_lower_case_word_does_not_end_the_sentence() -> None:
    segments = split_text("She was still… and then she left. Next.", 300)
    assert [s.text for s in segments] == ["She was still… and then she left.", "Next."]
    assert _chunks("She was still… and then she left.", EmbeddedEngine)[0].text == "She was still, and then she left."


def test_dashes_and_ellipses_are_where_a_long_sentence_may_be_cut() -> None:
    text = (
        "The old keeper climbed the winding iron stair of the lighthouse on the headland every single evening of "
        "her long and solitary life — through the winter storms and the thick grey fogs of the autumn and the quiet "
        "summer nights… she never once missed a single one of them, not once in all those years, and the great lamp "
        "burned on above the dark water long after the village below had gone to sleep."
    )
    chunks = _chunks(text, GlmttsEngine)
    assert len(chunks) > 1
    assert chunks[0].source_text.endswith("nights…")  # the clause break nearest the limit
    assert ", through the winter" in chunks[0].text  # the dash inside the chunk reads as a pause
    assert chunks[0].brk == "comma"
    assert all(length_units(c.text) <= CHUNK_RULE.max_units for c in chunks)
