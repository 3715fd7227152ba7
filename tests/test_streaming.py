"""Streaming output (issue 23): the windowed meter, limiter and writers give what the whole-signal code gave.

The reference for the example book is main's output just before streaming: sha256s recorded from
`batchtts run jobs/book.jsonl --out /tmp/ref` at commit f4bc294 (embedded engine), checked only when this
machine's engine produced the same chunk store (otherwise the comparison would be about the engine).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import soxr
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from batchtts.jobs.types import Loudness as LoudnessSpec
from batchtts.jobs.types import Pauses
from batchtts.output.chapter import stitch_chapter
from batchtts.output.encode import Tags
from batchtts.output.loudness import LoudnessMeter, PeakLimiter, measure, normalize
from batchtts.output.stitch import Piece, build_chapter
from tests.conftest import run_cli

MAIN_AUDIO = {  # sha256 of main's files (f4bc294), same chunk store
    ".batchtts/chapters/ch01.flac": "492d031904bf4158cda69baaebb2339193f85d94e0e7d4da6c47b1c22eb6b73e",
    ".batchtts/chapters/ch02.flac": "2840eb7525b4d89c5420d1b87561f21690d3c852e5537e80e39c0a34409e3c3d",
    ".batchtts/chapters/ch03.flac": "e9106a8756fb1fc8da907d148667b2658544d71f179da77a963b6ab1a6968b94",
    "Lanterns.m3u": "95acac3ff3603b4e2efbe9ca7025728e2eeebaeb4da4692a576bbe009fc81bee",
    "Lanterns.m4b": "08dca4f1fde14155ae1aebee8d943abe557deb41fee8f580b25c26d1222dd229",
    "book/01-the-lighthouse.mp3": "76ed93c5ae9d34a68a528d64207e7c8ed5793b96edc33dd1f63fc9b355b66cbc",
    "book/02-tea-house.mp3": "b8ec9f9c5b862e818d4ff77c67bba301df2093d77040bb96c89402e40f98e600",
    "book/03-two-languages.mp3": "113a1a5f9128b1623dc04f220f5ae47ca3a687662c78245fa9074d806415339d",
}
# The manifests' numbers (duration, LUFS, dBTP, every cue's start and end), not their text: cue text is the
# text stage's business and may change without the audio changing.
MAIN_TIMINGS = {
    "book/01-the-lighthouse.json": "7bda8db8ad30d4b1ce143cc23e6caa85b45596e416f64cfcafda5dfa046956e5",
    "book/02-tea-house.json": "8b2ccf91aff5aec51352da64c03f1a916a2aa76756e49e9b81dc3875c0e411c5",
    "book/03-two-languages.json": "88aa196765c893d7e2cf0f98341fb193608c056fe034712149e5b4678769a526",
}
MAIN_CHUNKS = "9addc655ab0098382fd91e01a36e9ecb1d177a23350fac502c5636cfea2ebeb0"  # chunk samples


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _chunk_store_digest(out: Path) -> str:
    h = hashlib.sha256()
    for wav in sorted((out / ".batchtts" / "chunks").glob("*/*.wav")):
        h.update(wav.name.encode())
        audio, rate = sf.read(str(wav), dtype="float32")  # the samples: the file's tags carry a date
        h.update(str(rate).encode() + audio.tobytes())
    return h.hexdigest()


def _timing_digest(path: Path) -> str:
    d = json.loads(path.read_text(encoding="utf-8"))
    nums = [d["duration"], d["loudness_lufs"], d["true_peak_db"], [(c["start"], c["end"]) for c in d["chunks"]]]
    return hashlib.sha256(json.dumps(nums).encode()).hexdigest()


@pytest.mark.slow
def test_example_book_is_byte_identical_to_main(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "jobs/book.jsonl", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    if _chunk_store_digest(out) != MAIN_CHUNKS:
        pytest.skip("this machine's engine made other chunks than main's reference run; nothing to compare")
    got = {name: _sha(out / name) for name in MAIN_AUDIO}
    assert got == MAIN_AUDIO
    assert {name: _timing_digest(out / name) for name in MAIN_TIMINGS} == MAIN_TIMINGS


def _speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Tone bursts with pauses and spikes: crosses both BS.1770 gates and the limiter's ceiling."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = (np.sin(2 * np.pi * 0.7 * t) > -0.2) * (0.3 + 0.7 * rng.random(n // 2000 + 1).repeat(2000)[:n])
    audio = envelope * (0.4 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(n))
    audio[rng.integers(0, n, max(1, n // 5000))] = 0.99
    return audio.astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 24000])
@pytest.mark.parametrize("seconds", [0.3, 2.7, 41.0])
def test_block_meter_equals_pyloudnorm(rate, seconds):
    audio = _speech_like(seconds, rate, seed=int(seconds * 10))
    meter = LoudnessMeter(rate)
    step = 1009  # windows that cut blocks at odd places
    for i in range(0, len(audio), step):
        meter.feed(audio[i : i + step])
    meter.feed(audio[:0], last=True)
    level = meter.result()
    if len(audio) < int(rate * 0.4):
        assert level.integrated_lufs == -70.0
    else:
        expected = pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64))
        assert math.isclose(level.integrated_lufs, expected, rel_tol=0, abs_tol=1e-9)
    up = soxr.resample(audio.astype(np.float64), rate, 4 * rate, quality="HQ")
    peak = max(np.max(np.abs(up)), np.max(np.abs(audio)))
    assert level.true_peak_db == pytest.approx(20 * math.log10(peak), abs=1e-12)


def _old_limit(audio: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """main's whole-signal limiter (f4bc294), kept here as the reference."""
    ceiling = 10 ** (ceiling_db / 20)
    up = soxr.resample(audio.astype(np.float64), rate, rate * 4, quality="HQ")
    n = len(audio)
    env = np.maximum(np.abs(audio), np.abs(up)[: n * 4].reshape(n, 4).max(axis=1))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    attack, release = max(1, int(0.005 * rate)), max(1, int(0.05 * rate))
    held = -maximum_filter1d(-need, size=2 * attack + release, mode="nearest")
    smooth = uniform_filter1d(held, size=attack, mode="nearest")
    return (audio * np.minimum(smooth, need)).astype(np.float32)


@pytest.mark.parametrize("window", [997, 65536])
@pytest.mark.parametrize("seconds", [0.05, 3.0, 60.0])
def test_streamed_limiter_is_bit_identical_to_whole_signal(window, seconds):
    rate = 22050
    audio = _speech_like(seconds, rate, seed=3) * np.float32(1.8)
    limiter = PeakLimiter(rate, -1.3)
    parts = [limiter.feed(audio[i : i + window], last=i + window >= len(audio)) for i in range(0, len(audio), window)]
    got = np.concatenate(parts)
    expected = _old_limit(audio, rate, -1.3)
    assert got.dtype == np.float32 and len(got) == len(audio)
    assert np.array_equal(got, expected)
    assert np.max(np.abs(got)) < np.max(np.abs(audio))  # it did limit


def test_limiter_under_the_ceiling_is_the_identity():
    audio = _speech_like(5.0, 16000, seed=4) * np.float32(0.3)
    got = PeakLimiter(16000, -1.0).feed(audio, last=True)
    assert np.array_equal(got, audio)


@pytest.mark.parametrize(("enabled", "level"), [(True, 1.0), (False, 1.0), (True, 1e-5)])  # 1e-5: all silence
def test_stitched_files_hold_the_whole_array_chapter(tmp_path, enabled, level):
    rate = 16000
    pieces = [
        Piece(
            _speech_like(1.0 + 0.3 * i, 22050 if i % 2 else rate, seed=i) * np.float32(level),
            22050 if i % 2 else rate,
            "sentence",
        )
        for i in range(12)
    ]
    spec = LoudnessSpec(enabled=enabled)
    pauses = Pauses()
    pcm, wav = tmp_path / "ch.flac", tmp_path / "ch.wav"
    got = stitch_chapter(iter(pieces), rate, pauses, spec, 0.1, pcm, wav, Tags("T"))
    expected = build_chapter(pieces, rate, pauses, spec, 0.1)
    assert got.samples == len(expected.audio)
    assert got.cues == expected.cues
    assert got.loudness == expected.loudness
    stored, r = sf.read(str(pcm), dtype="float32")
    assert r == rate and len(stored) == got.samples
    reference = tmp_path / "ref.flac"
    sf.write(str(reference), expected.audio, rate, format="FLAC", subtype="PCM_24")
    assert np.array_equal(stored, sf.read(str(reference), dtype="float32")[0])
    assert list(tmp_path.glob(".batchtts-tmp-*")) == []  # the scratch is gone
    if enabled:
        assert got.scratch_bytes == 4 * got.samples
    if enabled and level == 1.0:
        assert abs(measure(stored, rate).integrated_lufs - spec.target) < 0.2
    if level < 1.0:
        assert got.loudness.integrated_lufs == -70.0 and got.loudness.true_peak_db == -math.inf  # trimmed away


def test_array_normalize_reaches_target_and_ceiling():
    rate = 22050
    audio = _speech_like(20.0, rate, seed=9) * np.float32(2.0)
    out, level = normalize(audio, rate, -18.0, -1.0)
    assert abs(level.integrated_lufs + 18.0) <= 0.1
    assert level.true_peak_db <= -1.0
