"""Mixed-language sentences on the default engine: the Chinese run of an English sentence is spoken by the
Mandarin voice, English words of a Chinese sentence by the English voice, in one chunk, joined without a click."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded.engine import EmbeddedEngine
from batchtts.engines.embedded.espeak import MANDARIN_VOICE, phonemes, speak
from batchtts.engines.embedded.mixed import JOIN_GAP, voice_runs

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
OPTIONS = dict(EmbeddedEngine.option_defaults)


def test_runs_go_to_their_voice() -> None:
    assert voice_runs("He said 你好 to me.", "en") == [("en", "He said"), ("zh", "你好"), ("en", "to me.")]
    assert voice_runs("我们用Python写代码。", "zh") == [("zh", "我们用"), ("en", "Python"), ("zh", "写代码。")]
    assert voice_runs("A股涨了。", "zh") == [("zh", "A股涨了。")]
    assert voice_runs("Hello there.", "en") == [("en", "Hello there.")]


def test_mandarin_voice_reads_tones_not_english_digits() -> None:
    # espeak-ng 1.51's `cmn` voice reads "你好" as pinyin with English tone digits ("(en)nI55Tr'i:55": "nee three").
    for text in ["你好", "今天的天气很好，我们去公园散步吧。", "二零二四年三月五日"]:
        assert "(en)" not in phonemes(text), text


@pytest.fixture(scope="module")
def engine():
    e = EmbeddedEngine.load(threads=2)
    yield e
    e.close()


def test_chinese_run_in_an_english_chunk_is_spoken_in_mandarin(engine) -> None:
    [mixed] = engine.synthesize([SynthRequest("k", "He said 你好 to me.", "en", 11, OPTIONS)], {})
    mandarin = speak("你好", MANDARIN_VOICE, engine.sample_rate)
    head, tail = engine.piper.synthesize(
        ["He said", "to me."], [11, (11 + 7919 * 2) & 0xFFFFFFFF], OPTIONS["noise_scale"],
        OPTIONS["length_scale"], OPTIONS["noise_w"],
    )  # fmt: skip
    gap = int(engine.sample_rate * JOIN_GAP)
    assert len(mixed.audio) == len(head) + len(mandarin) + len(tail) + 2 * gap
    middle = mixed.audio[len(head) + gap : len(head) + gap + len(mandarin)]
    inner = slice(len(middle) // 10, -len(middle) // 10)  # the fades touch only the edges
    assert np.allclose(middle[inner], mandarin[inner])


def test_joins_do_not_click(engine) -> None:
    [mixed] = engine.synthesize([SynthRequest("k", "我们用Python写代码。", "zh", 3, OPTIONS)], {})
    first = speak("我们用", MANDARIN_VOICE, engine.sample_rate)
    [word] = engine.piper.synthesize(
        ["Python"], [(3 + 7919) & 0xFFFFFFFF], OPTIONS["noise_scale"], OPTIONS["length_scale"], OPTIONS["noise_w"]
    )
    gap = int(engine.sample_rate * JOIN_GAP)
    audio = mixed.audio
    steps = np.abs(np.diff(audio))
    edges = [len(first), len(first) + gap, len(first) + gap + len(word), len(first) + 2 * gap + len(word)]
    for e in edges:  # every edge of a gap is faded to silence: no step there bigger than inside the speech
        assert abs(audio[e - 1]) < 1e-6 or abs(audio[e]) < 1e-6
        assert steps[e - 3 : e + 3].max() <= np.percentile(steps, 99.9)


def test_one_voice_chunks_are_unchanged(engine) -> None:
    [alone] = engine.synthesize([SynthRequest("k", "Hello there.", "en", 5, OPTIONS)], {})
    [direct] = engine.piper.synthesize(
        ["Hello there."], [5], OPTIONS["noise_scale"], OPTIONS["length_scale"], OPTIONS["noise_w"]
    )
    assert np.array_equal(alone.audio, direct)
