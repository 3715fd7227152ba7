from hypothesis import given, settings
from hypothesis import strategies as st

from batchtts.jobs.markup import speakable, strip_markers
from batchtts.text.split import COMMA, END, HARD, PARAGRAPH, PAUSE, SENTENCE, split_text


def texts(text: str, max_chars: int = 300) -> list[str]:
    return [s.text for s in split_text(text, max_chars)]


def test_english_abbreviations_initials_decimals_and_acronyms_do_not_break():
    text = "Dr. Smith met T. S. Eliot in the U.S.A. on Monday. Pi is 3.14, roughly! Is it? Mr. Brown left."
    assert texts(text) == [
        "Dr. Smith met T. S. Eliot in the U.S.A. on Monday.",
        "Pi is 3.14, roughly!",
        "Is it?",
        "Mr. Brown left.",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert texts('"Yes," he said. "It is." (Quite so.) Then he left.') == [
        '"Yes," he said.',
        '"It is."',
        "(Quite so.)",
        "Then he left.",
    ]
    assert texts("他说：“你好。”我们走吧！") == ["他说：“你好。”", "我们走吧！"]


def test_chinese_full_width_punctuation_breaks():
    assert texts("今天天气很好；明天会下雨……真的吗？是的！") == ["今天天气很好；", "明天会下雨……", "真的吗？是的！"]


def test_mixed_text_breaks_between_scripts():
    assert texts("Good morning, Mr. Lin! 早上好，林老板！Then he laughed.") == [
        "Good morning, Mr. Lin!",
        "早上好，林老板！",
        "Then he laughed.",
    ]


def test_lowercase_continuation_is_not_a_new_sentence():
    assert texts("Wait... and then it rained. Apples, e.g. the red ones, fell.") == [
        "Wait... and then it rained.",
        "Apples, e.g. the red ones, fell.",
    ]


def test_paragraph_breaks_are_kept():
    segs = split_text("Title line here\n\nFirst one. Second one.\n\n\nThird paragraph.")
    assert [(s.text, s.brk) for s in segs] == [
        ("Title line here", PARAGRAPH),
        ("First one.", SENTENCE),
        ("Second one.", PARAGRAPH),
        ("Third paragraph.", END),
    ]


def test_long_sentences_cut_at_commas_then_at_a_hard_limit():
    text = "a" * 30 + ", " + "b" * 30 + ", " + "word " * 30 + "end."
    segs = split_text(text, max_chars=40)
    assert [s.brk for s in segs][:2] == [COMMA, COMMA]
    assert HARD in [s.brk for s in segs]
    assert all(len(s.text) <= 40 for s in segs)
    assert all(not s.text.startswith("ord") for s in segs)  # hard cuts prefer spaces


def test_tiny_fragments_merge_with_a_neighbour():
    assert texts("Oh. The rain fell all night.") == ["Oh. The rain fell all night."]
    assert texts("The rain fell all night. Oh.") == ["The rain fell all night. Oh."]
    assert texts("是。我们走吧。") == ["是。我们走吧。"]


def test_punctuation_only_text_is_one_segment():
    assert texts("...") == ["..."]


ALPHABET = st.sampled_from(list("abc XYZ.,!?;:\n\n\"'()。！？；…，、”“中文字") + ["Dr.", "U.S.", "3.14", "  "])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, min_size=1, max_size=200).map("".join), st.integers(min_value=8, max_value=80))
def test_every_character_lands_in_exactly_one_segment_in_order(text, max_chars):
    segs = split_text(text, max_chars)
    assert "".join(text[s.start : s.end] for s in segs) == text
    assert all(a.end == b.start for a, b in zip(segs, segs[1:], strict=False))
    assert segs[0].start == 0 and segs[-1].end == len(text)
    for s in segs:
        assert s.text == text[s.start : s.end].strip()
        assert speakable(s.text) <= max_chars
    if speakable(text):
        assert all(s.text for s in segs)
    assert segs[-1].brk == END


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=400), st.integers(min_value=8, max_value=300))
def test_any_unicode_text_is_covered(text, max_chars):
    segs = split_text(text, max_chars)
    assert "".join(text[s.start : s.end] for s in segs) == text


def test_pause_markers_end_a_segment_and_set_its_pause():
    text = "[pause:1] Hello there, friend.[pause:2] The rain fell.\n\n[pause:0.5][pause:0.5]Last one here. "
    segs = split_text(text, 60)
    assert [(s.text, s.brk, s.pause) for s in segs] == [
        ("Hello there, friend.", PAUSE, 2.0),
        ("The rain fell.", PAUSE, 1.0),
        ("Last one here.", END, None),
    ]
    assert segs[0].pause_before == 1.0
    assert "".join(text[s.start : s.end] for s in segs) == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(ALPHABET, st.sampled_from(["[pause:1]", "[pause:0.25] ", " [PAUSE:2s]"])), min_size=1, max_size=120
    ).map("".join),
    st.integers(min_value=8, max_value=80),
)
def test_markers_never_reach_spoken_text_and_coverage_holds(text, max_chars):
    segs = split_text(text, max_chars)
    assert "".join(text[s.start : s.end] for s in segs) == text
    for s in segs:
        assert "[pause" not in s.text.lower()
        assert s.text == strip_markers(text[s.start : s.end]).strip()


def test_a_long_sentence_is_never_cut_inside_a_number_or_a_time():
    text = ("The ships worth, at the time of sailing, some $20,000,000 and every year importing into our harbors "
            "a harvest that left at 10:30 each morning.")  # fmt: skip
    pieces = texts(text, max_chars=50)
    assert len(pieces) > 1
    joined = "|".join(pieces)
    assert "20,000,000" in joined and "10:30" in joined, pieces
