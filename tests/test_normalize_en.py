# ruff: noqa: E501 - one table row per line
"""The English book-text normaliser: source text in, the exact reading out, for both engines (the default engine
reads the normaliser's text; GLM-TTS reads it through its own frontend, lower-cased with a final stop)."""

from __future__ import annotations

import pytest

from batchtts.engines.glmtts.text_frontend import normalize as glm
from batchtts.text.normalize import normalize

CASES = [
    # (class, source, what the default engine reads, what GLM-TTS reads)
    ("leading zero", "Chapter 01", "Chapter one", "chapter one."),
    ("regnal numeral", "Henry VIII", "Henry the Eighth", "henry the eighth."),
    ("heading numeral", "Chapter XII", "Chapter twelve", "chapter twelve."),
    ("heading numeral", "BOOK I. (FOLIO), CHAPTER XII.", "BOOK one., FOLIO, CHAPTER twelve.", "book one, folio, chapter twelve."),
    ("heading numeral", "IX The Mock Turtle", "Nine, The Mock Turtle", "nine, the mock turtle."),
    ("heading numeral", "I", "One", "one."),
    ("pronoun I", "Then I went home.", "Then I went home.", "then i went home."),
    ("regnal numeral", "Elizabeth I ruled.", "Elizabeth the First ruled.", "elizabeth the first ruled."),
    ("numeral", "World War II", "World War Two", "world war two."),
    ("year", "in 1905", "in nineteen oh five", "in nineteen oh five."),
    ("year", "since 1066", "since ten sixty-six", "since ten sixty six."),
    ("year", "He left in 2011.", "He left in twenty eleven.", "he left in twenty eleven."),
    ("year range", "1900-1907", "nineteen hundred to nineteen oh seven", "nineteen hundred to nineteen oh seven."),
    ("decade", "the 1920s", "the nineteen twenties", "the nineteen twenties."),
    ("decade", "in the '60s", "in the sixties", "in the sixties."),
    ("date", "3 May 1905", "the third of May nineteen oh five", "the third of may nineteen oh five."),
    ("date", "May 3, 1905", "May third, nineteen oh five", "may third, nineteen oh five."),
    ("ordinal", "1st and 2nd and 3rd", "first and second and third", "first and second and third."),
    ("unit", "20 m. from the coast", "twenty metres from the coast", "twenty metres from the coast."),
    ("unit", "10m (32ft)", "ten metres, thirty-two feet", "ten metres, thirty two feet."),
    ("unit", "It was 3.5 km away.", "It was three point five kilometres away.", "it was three point five kilometres away."),
    ("unit", "1 m", "one metre", "one metre."),
    ("unit", "32°F", "thirty-two degrees Fahrenheit", "thirty two degrees fahrenheit."),
    ("coordinate", "51°30′N", "fifty-one degrees thirty minutes north", "fifty one degrees thirty minutes north."),
    ("abbreviation", "No. 7", "number seven", "number seven."),
    ("abbreviation", "St. Paul", "Saint Paul", "saint paul."),
    ("abbreviation", "Main St. was busy.", "Main Street was busy.", "main street was busy."),
    ("abbreviation", "Mr. Smith", "Mister Smith", "mister smith."),
    ("abbreviation", "e.g. this", "for example this", "for example this."),
    ("abbreviation", "i.e. that", "that is that", "that is that."),
    ("abbreviation", "apples, pears, etc.", "apples, pears, et cetera.", "apples, pears, et cetera."),
    ("era", "A.D. 890", "A D eight ninety", "a d eight ninety."),
    ("era", "55 B.C.", "fifty-five B C.", "fifty five b c."),
    ("fraction", "1/2 a cup and 3/4", "one half a cup and three quarters", "one half a cup and three quarters."),
    ("ratio", "a 3:1 ratio", "a three to one ratio", "a three to one ratio."),
    ("time", "at 10:30 and 9:05", "at ten thirty and nine oh five", "at ten thirty and nine oh five."),
    ("phone", "call 555-1234", "call five five five one two three four", "call five five five one two three four."),
    ("digits", "12345678", "one two three four five six seven eight", "one two three four five six seven eight."),
    ("grouped", "1,500 men", "one thousand five hundred men", "one thousand five hundred men."),
    ("mixed fraction", "hours spent, 158½; or", "hours spent, one hundred and fifty-eight and a half; or", "hours spent, one hundred and fifty eight and a half; or."),
    ("date", "On this very 2nd of October he", "On this very second of October he", "on this very second of october he."),
    ("grouped", "It cost 1,000,000 dollars.", "It cost one million dollars.", "it cost one million dollars."),
    ("year range", "He lived there 1800-1805.", "He lived there eighteen hundred to eighteen oh five.", "he lived there eighteen hundred to eighteen oh five."),
    ("leading zero", "007", "oh oh seven", "oh oh seven."),
    ("money", "it cost $5.50", "it cost five dollars fifty cents", "it cost five dollars fifty cents."),
    ("percent", "50% of them", "fifty percent of them", "fifty percent of them."),
    ("minus", "-5 degrees", "minus five degrees", "minus five degrees."),
    ("range", "pages 10–20", "pages ten to twenty", "pages ten to twenty."),
    ("ellipsis", "she is still… Anna", "she is still, Anna", "she is still, anna."),
    ("ellipsis", "wait . . . what", "wait, what", "wait, what."),
    ("dash", "better—their child", "better, their child", "better, their child."),
    ("apostrophe", "parents’ house", "parents' house", "parents' house."),
    ("apostrophe", "I don’t know", "I don't know", "i don't know."),
    ("slash", "and/or", "and or", "and or."),
    ("url", "see https://example.com/a/b.", "see example dot com.", "see example dot com."),
    ("email", "mail jane.doe@example.org", "mail jane dot doe at example dot org", "mail jane dot doe at example dot org."),
    ("version", "version v2.0.1", "version two point zero point one", "version two point zero point one."),
    ("code", "call console.log() now", "call console dot log now", "call console dot log now."),
    ("code", "my_var_name", "my var name", "my var name."),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "source", "embedded", "glmtts"), CASES, ids=[c[1] for c in CASES])
def test_english_reading(cls: str, source: str, embedded: str, glmtts: str) -> None:
    said = normalize(source, "en")
    assert said == embedded, cls
    assert glm(said, "en") == glmtts, cls


def test_rewrites_are_logged_by_class() -> None:
    log: list[tuple[str, str, str]] = []
    normalize("In 1905 Henry VIII walked 20 m. to No. 7, see www.example.com and console.log.", "en", log)
    classes = {c for c, _, _ in log}
    assert {"year", "numeral", "unit", "abbreviation", "url", "code"} <= classes
    assert ("year", "In 1905", "In nineteen oh five") in log


MORE = [
    ("clock", "Left London at 8.45 p.m.", "Left London at eight forty-five P M."),
    ("clock", "at 10:00 pm", "at ten P M"),
    ("initial, not a numeral", "M. Waldman praised me, with kindness.", "M. Waldman praised me, with kindness."),
    ("numeral heading", "II. THE GAME OF CHESS", "Two, THE GAME OF CHESS"),
    ("numeral heading", "I. THE BURIAL OF THE DEAD", "One, THE BURIAL OF THE DEAD"),
    ("pronoun I", "I think so", "I think so"),
    ("emphasis, not code", "such as _good, dearest_.", "such as good, dearest."),
    ("unit", "a 5 in. pipe", "a five inches pipe"),
    ("money", "£2,400 a year", "two thousand four hundred pounds a year"),
    ("dated year", "the 21st of December, 1872", "the twenty-first of December eighteen seventy-two"),
]


@pytest.mark.parametrize(("cls", "source", "reading"), MORE, ids=[c[1] for c in MORE])
def test_book_context(cls: str, source: str, reading: str) -> None:
    assert normalize(source, "en") == reading, cls
