"""Chapter loudness: ITU-R BS.1770 integrated loudness (pyloudnorm) and a true-peak ceiling.

Normalising per chapter, never per sentence, keeps the narrator's natural dynamics and avoids the
volume jumps listeners hear when each sentence is pushed to the same peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyloudnorm
import soxr
from scipy.ndimage import maximum_filter1d, uniform_filter1d

OVERSAMPLE = 4  # BS.1770 true peak: the peak of the signal oversampled 4x
SILENCE_LUFS = -70.0  # BS.1770's absolute gate


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_db: float


def true_peak_db(audio: np.ndarray, rate: int) -> float:
    if len(audio) == 0:
        return -math.inf
    up = soxr.resample(audio.astype(np.float64), rate, rate * OVERSAMPLE, quality="HQ")
    peak = max(float(np.max(np.abs(up))), float(np.max(np.abs(audio))))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def measure(audio: np.ndarray, rate: int) -> Loudness:
    meter = pyloudnorm.Meter(rate)
    block = int(rate * meter.block_size)
    if len(audio) < block or not np.any(audio):
        return Loudness(SILENCE_LUFS, true_peak_db(audio, rate))
    lufs = float(meter.integrated_loudness(audio.astype(np.float64)))
    return Loudness(lufs if math.isfinite(lufs) else SILENCE_LUFS, true_peak_db(audio, rate))


def _limit(audio: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """Look-ahead peak limiter: a gain curve that reaches its floor before each over-ceiling peak and
    recovers smoothly after it (5 ms attack, 50 ms hold/release)."""
    ceiling = 10 ** (ceiling_db / 20)
    up = soxr.resample(audio.astype(np.float64), rate, rate * OVERSAMPLE, quality="HQ")
    env = np.abs(up).reshape(-1)
    n = len(audio)
    # Peak per original sample, from the oversampled signal.
    env = np.maximum(
        np.abs(audio),
        env[: n * OVERSAMPLE].reshape(n, OVERSAMPLE).max(axis=1) if len(env) >= n * OVERSAMPLE else np.abs(audio),
    )
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    attack = max(1, int(0.005 * rate))
    release = max(1, int(0.05 * rate))
    # Hold the lowest gain across the attack window on both sides, then smooth: never above `need`.
    held = -maximum_filter1d(-need, size=2 * attack + release, mode="nearest")
    smooth = uniform_filter1d(held, size=attack, mode="nearest")
    gain = np.minimum(smooth, need)
    return (audio * gain).astype(np.float32)


def normalize(
    audio: np.ndarray, rate: int, target_lufs: float, true_peak_limit_db: float
) -> tuple[np.ndarray, Loudness]:
    """Gain to `target_lufs`, then limit true peaks under `true_peak_limit_db`; repeated until both hold
    (limiting lowers loudness a little, so the gain is corrected and the limiter re-run)."""
    out = audio.astype(np.float32)
    if not np.any(out):
        return out, measure(out, rate)
    ceiling = true_peak_limit_db - 0.3  # head-room for the encoder's own overshoot
    for _ in range(10):
        level = measure(out, rate)
        if level.integrated_lufs <= SILENCE_LUFS:
            return out, level
        out = (out * 10 ** ((target_lufs - level.integrated_lufs) / 20)).astype(np.float32)
        if true_peak_db(out, rate) > ceiling:
            out = _limit(out, rate, ceiling)
        level = measure(out, rate)
        if abs(level.integrated_lufs - target_lufs) <= 0.1 and level.true_peak_db <= true_peak_limit_db:
            break
    return out, measure(out, rate)
