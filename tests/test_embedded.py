"""The real embedded default engine: Piper's shipped English voice and espeak-ng's Mandarin."""

import numpy as np
import pytest
import soundfile as sf

from batchtts import run
from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded import EmbeddedEngine
from tests.conftest import run_cli, write_jobs

SENTENCES = [
    "The lamp was lit at six every evening.",
    "She climbed the stairs slowly.",
    "Nobody came to the island that winter, not even the doctor.",
]


@pytest.fixture(scope="module")
def engine():
    eng = EmbeddedEngine.load()
    yield eng
    eng.close()


def _req(engine, text, seed, language="en", **opts):
    return SynthRequest(f"k{seed}", text, language, seed, engine.resolve_options(opts))


def test_batch_output_equals_one_at_a_time_bit_for_bit(engine):
    reqs = [_req(engine, t, i) for i, t in enumerate(SENTENCES)]
    batched = engine.synthesize(reqs, {})
    alone = [engine.synthesize([r], {})[0] for r in reversed(reqs)][::-1]
    for b, a in zip(batched, alone, strict=True):
        assert b.sample_rate == a.sample_rate == 22050
        assert np.array_equal(b.audio, a.audio)


@pytest.mark.parametrize("budget", [1, 1 << 40])
def test_the_memory_budget_changes_what_runs_side_by_side_never_the_samples(engine, budget):
    """A tiny budget runs one sequence at a time, a huge one all at once; each sequence's samples are its own."""
    reqs = [_req(engine, t, i) for i, t in enumerate(SENTENCES)]
    alone = [engine.synthesize([r], {})[0].audio for r in reqs]
    engine.use_memory_budget(budget)
    try:
        assert engine.piper.ids_in_flight == max(1, budget // (540 * 1024))
        batched = engine.synthesize(reqs, {})
    finally:
        engine.use_memory_budget(640 * 540 * 1024)
    assert all(np.array_equal(b.audio, a) for b, a in zip(batched, alone, strict=True))


def test_the_seed_decides_the_sampling(engine):
    a, b, c = engine.synthesize(
        [_req(engine, SENTENCES[0], 1), _req(engine, SENTENCES[0], 1), _req(engine, SENTENCES[0], 2)], {}
    )
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_english_speech_has_a_plausible_length_and_level(engine):
    [res] = engine.synthesize([_req(engine, SENTENCES[2], 0)], {})
    seconds = len(res.audio) / res.sample_rate
    words = len(SENTENCES[2].split())
    assert words / 5.0 < seconds < words / 1.0  # 1 to 5 words per second
    rms = float(np.sqrt(np.mean(res.audio**2)))
    assert 0.01 < rms < 0.5 and np.isfinite(res.audio).all()


def test_chinese_goes_to_espeak_mandarin(engine):
    [res] = engine.synthesize([_req(engine, "今天天气很好，我们去山里喝茶。", 0, language="zh")], {})
    seconds = len(res.audio) / res.sample_rate
    assert 1.0 < seconds < 8.0 and float(np.sqrt(np.mean(res.audio**2))) > 0.01


def test_length_scale_slows_speech(engine):
    fast, slow = engine.synthesize([_req(engine, SENTENCES[1], 0), _req(engine, SENTENCES[1], 0, length_scale=1.5)], {})
    assert len(slow.audio) > 1.3 * len(fast.audio)


@pytest.mark.slow
def test_cli_run_on_the_default_engine_writes_real_speech(tmp_path, voice_wav):
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": "en", "text": " ".join(SENTENCES), "output": "en.mp3", "voice": {"prompt_audio": str(voice_wav)}},
            {
                "id": "mixed",
                "text": "早上好，林老板！Good morning, Mr. Lin.\n\n林老板把画挂在墙上。",
                "output": "mixed.flac",
            },
        ],
    )
    proc = run_cli("run", str(jobs), "-v")
    assert proc.returncode == 0, proc.stderr
    assert "cannot clone voices" in proc.stderr
    audio, rate = sf.read(tmp_path / "out" / "mixed.flac")
    assert rate == 22050 and 3.0 < len(audio) / rate < 20.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert (tmp_path / "out" / "en.mp3").stat().st_size > 10_000
    again = run(jobs)
    assert again.synthesized == 0 and again.written == []
