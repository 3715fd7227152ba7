"""The Chinese book-text normaliser and GLM-TTS's frontend around it: source in, the exact reading out."""

from __future__ import annotations

import pytest

from batchtts.engines.glmtts.text_frontend import normalize as glm
from batchtts.text.normalize import normalize

CASES = [
    # (class, source, what the default engine reads, what GLM-TTS reads)
    ("minus", "气温 -5 度", "气温负五度", "气温负五度。"),
    ("year", "2011 年", "二零一一年", "二零一一年。"),
    ("year", "2011年，他", "二零一一年，他", "二零一一年，他。"),
    ("version", "版本v2.0.1", "版本v二点零点一", "版本v二点零点一。"),
    ("url", "见https://example.com/a/b。", "见example点com。", "见example点com。"),
    ("code", "console.log", "console点log", "console点log。"),
    ("code", "my_var变量", "my var变量", "my var变量。"),
    ("email", "发邮件到a.b@example.com", "发邮件到a点b艾特example点com", "发邮件到a点b艾特example点com。"),
    ("number", "有12345人", "有一万二千三百四十五人", "有一万二千三百四十五人。"),
    ("decimal", "3.5公里", "三点五公里", "三点五公里。"),
    ("percent", "50%的人", "百分之五十的人", "百分之五十的人。"),
    ("ratio", "1:2的比例", "一比二的比例", "一比二的比例。"),
    ("time", "10:30出发", "十点三十分出发", "十点三十分出发。"),
    ("fraction", "3/4的人", "四分之三的人", "四分之三的人。"),
    ("digits", "电话13812345678", "电话一三八一二三四五六七八", "电话一三八一二三四五六七八。"),
    ("date", "5月3日", "五月三日", "五月三日。"),
    ("range", "3~5天", "三到五天", "三到五天。"),
    ("ordinal", "第3回", "第三回", "第三回。"),
    ("leading zero", "007号", "零零七号", "零零七号。"),
    ("unit", "−5℃", "负五摄氏度", "负五摄氏度。"),
    ("unit", "20km/h", "二十公里每小时", "二十公里每小时。"),
    ("full width", "１２３个", "一百二十三个", "一百二十三个。"),
    ("heading spaces", "第一回 灵根育孕源流出 心性修持大道生", "第一回，灵根育孕源流出，心性修持大道生",
     "第一回，灵根育孕源流出，心性修持大道生。"),
    ("pauses", "他说……然后——走了（真的）。", "他说，然后，走了，真的。", "他说，然后，走了，真的。"),
    ("full-width stop", "天亮了．他走了", "天亮了。他走了", "天亮了。他走了。"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "source", "embedded", "glmtts"), CASES, ids=[c[1] for c in CASES])
def test_chinese_reading(cls: str, source: str, embedded: str, glmtts: str) -> None:
    said = normalize(source, "zh")
    assert said == embedded, cls
    assert glm(said, "zh") == glmtts, cls


def test_traditional_becomes_simplified_for_glmtts() -> None:
    assert glm(normalize("這是一個測試", "zh"), "zh") == "这是一个测试。"


def test_glmtts_frontend_is_idempotent_where_the_official_is_not() -> None:
    once = glm(normalize("…你好！”然后", "zh"), "zh")
    assert once == "你好。然后。"
    assert glm(once, "zh") == once


def test_chinese_run_in_english_is_read_by_the_chinese_rules() -> None:
    assert normalize("He said 你好 in 2011年 to me.", "en") == "He said 你好 in 二零一一年 to me."


MORE = [
    ("duration, not a year", "整整用了 15 年。", "整整用了十五年。"),
    ("number inside a number", "发布 262 号标准", "发布二百六十二号标准"),
    ("digits of a name", "简称 ES2016", "简称ES二零一六"),
    ("bare address", "在官方网站GitHub.com/tc39/ecma262查看。", "在官方网站GitHub点com查看。"),
    ("digit separators", "值为12_345，共1,500人", "值为一万二千三百四十五，共一千五百人"),
]


@pytest.mark.parametrize(("cls", "source", "reading"), MORE, ids=[c[1] for c in MORE])
def test_book_context(cls: str, source: str, reading: str) -> None:
    assert normalize(source, "zh") == reading, cls
