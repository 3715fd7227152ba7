"""False flags: with the default thresholds, pocketsphinx on the real default engine's good takes of the
example book's English chapter flags at most 1 in 20 (and retakes none, so the chapter's bytes stay)."""

from __future__ import annotations

from pathlib import Path

import pytest

import batchtts
from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded import EmbeddedEngine
from batchtts.text.chunks import chunk_seed
from batchtts.verify.score import threshold
from batchtts.verify.stage import Verifier, VerifyPlan

BOOK = Path(__file__).resolve().parent.parent / "jobs" / "book.jsonl"


@pytest.mark.slow
def test_default_threshold_passes_good_takes_of_the_example_chapter(tmp_path):
    chunks = [c for c in batchtts.chunks(BOOK, out=tmp_path) if c.job_id == "ch01" and c.language == "en"]
    assert len(chunks) >= 10
    engine = EmbeddedEngine.load(threads=2)
    try:
        reqs = [SynthRequest(c.key, c.text, c.language, chunk_seed(c.key, 0), c.options) for c in chunks]
        takes = engine.synthesize(reqs, {})
    finally:
        engine.close()
    plan = VerifyPlan("pocketsphinx", threshold("pocketsphinx", "en"), 2)
    verifier = Verifier({("ch01", "en"): plan})
    scores = verifier.score([(plan, c.text, "en", t.audio, t.sample_rate) for c, t in zip(chunks, takes, strict=True)])
    failed = [(c.text, s.transcript, s.error) for c, s in zip(chunks, scores, strict=True) if not s.passed]
    assert len(failed) <= len(chunks) / 20, failed
    heard = [s for s in scores if s.error == 0.0]
    assert heard, "pocketsphinx heard no sentence of the chapter exactly: is it transcribing at all?"
