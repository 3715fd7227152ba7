"""Streaming output (issue 23): the windowed meter, limiter and writers give what the whole-signal code gave.

The reference is the whole-signal path main used before streaming (`build_chapter`, `normalize`), kept for
this comparison: on synthetic chapters and on the example book's real chunk store.
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
from batchtts.planning.prepare import prepare
from batchtts.state.workspace import Workspace
from tests.conftest import ROOT, run_cli


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_example_book_streamed_equals_the_whole_array_chapter(tmp_path):
    """The example book through `batchtts run` (streaming writer), then each chapter rebuilt from the same chunk
    store by the whole-signal path main used before streaming (`build_chapter`: the whole chapter in memory,
    measured, gained and limited at once): the chapter PCM holds the same samples and the manifest the same
    timings and loudness. (Byte identity with main's files, 17 of 17, was checked when streaming landed, before the
    book-text normaliser changed the example book's chunk keys.)"""
    out = tmp_path / "out"
    proc = run_cli("run", "jobs/book.jsonl", "--out", str(out), "--no-verify")
    assert proc.returncode == 0, proc.stderr
    prep = prepare(ROOT / "jobs" / "book.jsonl", out, None, False)
    space = Workspace(prep.out_dir)
    store = space.store()
    assert len(prep.jobs) == 3
    for job in prep.jobs:
        chunks = prep.chunks[job.id]
        rate = job.sample_rate or store.sample_rate(chunks[0].key)
        pieces = [Piece(*store.read(c.key), c.brk, c.source_text, c.key, c.pause) for c in chunks]
        expected = build_chapter(pieces, rate, job.pauses, job.loudness, chunks[0].pause_before)
        stored, r = sf.read(str(space.chapter_pcm(job.id)), dtype="float32")
        reference = tmp_path / f"{job.id}.flac"
        sf.write(str(reference), expected.audio, rate, format="FLAC", subtype="PCM_24")
        assert r == rate and np.array_equal(stored, sf.read(str(reference), dtype="float32")[0]), job.id
        manifest = json.loads(job.output.with_suffix(".json").read_text(encoding="utf-8"))
        assert [(c["start"], c["end"]) for c in manifest["chunks"]] == [
            (round(cue.start, 4), round(cue.end, 4)) for cue in expected.cues
        ], job.id
        assert manifest["loudness_lufs"] == round(expected.loudness.integrated_lufs, 2), job.id


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


def test_the_pipelined_stage_keeps_order_and_raises_the_producers_error():
    from batchtts.output.chapter import _ahead

    def produce(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"window {i}")
            yield i

    assert list(_ahead(produce(50))) == list(range(50))
    assert list(_ahead(produce(0))) == []
    got = []
    with pytest.raises(ValueError, match="window 7"):
        for item in _ahead(produce(50, fail_at=7)):
            got.append(item)
    assert got == list(range(7))


def test_phase_peaks_equal_the_reshaped_maximum():
    from batchtts.output.loudness import OVERSAMPLE, _phase_peaks

    up = np.random.default_rng(5).standard_normal(OVERSAMPLE * 10_007)
    assert np.array_equal(_phase_peaks(up), np.abs(up).reshape(-1, OVERSAMPLE).max(axis=1))
