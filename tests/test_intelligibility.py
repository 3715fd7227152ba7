"""Quality guard: the default engine's speech is intelligible to a speech recogniser, and batching does
not change it (the WER is the same whether chunks are synthesised in batches or one at a time)."""

import pytest

from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded import EmbeddedEngine
from bench.asr import transcribe, wer

TEXT = [
    "The lamp was lit at six every evening.",
    "She climbed the stairs slowly and wound the clock.",
    "Nobody came to the island that winter.",
    "The ship answered with a single light.",
    "In the morning the sea was calm again.",
]
WER_CEILING = 0.45  # pocketsphinx's small bundled model; measured 0.31 here, garbage scores ~1.0


@pytest.fixture(scope="module")
def engine():
    eng = EmbeddedEngine.load()
    yield eng
    eng.close()


@pytest.mark.slow
def test_wer_is_low_and_identical_batched_or_one_at_a_time(engine):
    opts = engine.resolve_options({})
    reqs = [SynthRequest(f"k{i}", t, "en", 1000 + i, opts) for i, t in enumerate(TEXT)]
    batched = engine.synthesize(reqs, {})
    single = [engine.synthesize([r], {})[0] for r in reqs]
    hyp_batched = [transcribe(r.audio, r.sample_rate) for r in batched]
    hyp_single = [transcribe(r.audio, r.sample_rate) for r in single]
    score = wer(TEXT, hyp_batched)
    assert score <= WER_CEILING, list(zip(TEXT, hyp_batched, strict=True))
    assert wer(TEXT, hyp_single) == score
