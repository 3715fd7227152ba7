"""Chapter loudness: ITU-R BS.1770 integrated loudness and a true-peak ceiling, measured and applied in
bounded windows so a chapter's memory does not depend on its length.

Normalising per chapter, never per sentence, keeps the narrator's natural dynamics and avoids the
volume jumps listeners hear when each sentence is pushed to the same peak.

The streaming meter reproduces pyloudnorm's `Meter.integrated_loudness` (K-weighting by `lfilter` with its
state carried across windows, 400 ms blocks at 75 % overlap, absolute then relative gate): BS.1770 gating
needs only each block's mean square, so the meter keeps those (4 floats a second), never the signal. The
true peak is BS.1770's: the peak of the signal oversampled 4x by soxr (HQ), whose streaming resampler gives
the same samples as its one-shot call.
"""

from __future__ import annotations

import functools
import importlib
import math
import threading
from dataclasses import dataclass

import numpy as np
import soxr

OVERSAMPLE = 4  # BS.1770 true peak: the peak of the signal oversampled 4x
SILENCE_LUFS = -70.0  # BS.1770's absolute gate
WINDOW = 1 << 16  # samples per window in every streaming pass (about 3 s at 22.05 kHz)


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_db: float


# Imported on first use: scipy.signal (pyloudnorm's filters, lfilter) costs ~0.7 s of start-up, which `status`,
# `plan` and a run with nothing to write do not need. A run that will write calls preload() when it starts.
_DSP = ("pyloudnorm", "scipy.signal", "scipy.ndimage")


def preload() -> threading.Thread:
    """Import the signal-processing modules on a thread of their own, while the engine loads and synthesises
    (an import holds the interpreter lock, inference does not); whoever needs one first waits for it."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in _DSP], name="batchtts-preload")
    thread.start()
    return thread


def _upsampler(rate: int) -> soxr.ResampleStream:
    return soxr.ResampleStream(rate, rate * OVERSAMPLE, 1, dtype="float64", quality="HQ")


class LoudnessMeter:
    """Integrated loudness (LUFS) and true peak (dBTP) of a mono signal fed in windows of any size.

    Memory: the filter states, one block of filtered samples, and one float per 100 ms of audio."""

    def __init__(self, rate: int, true_peak: bool = True) -> None:
        """`true_peak=False` skips the 4x oversampling (the costliest part); result() then reads the sample peak."""
        import pyloudnorm
        from scipy.signal import lfilter

        self._lfilter = lfilter
        self.rate = rate
        meter = pyloudnorm.Meter(rate)
        self._block_size = meter.block_size
        self._step = 1.0 - meter.overlap
        self._filters = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
        self._zi = [np.zeros(max(len(a), len(b)) - 1) for b, a, _ in self._filters]
        self._buf = np.zeros(0)  # filtered samples from absolute index self._buf_start
        self._buf_start = 0
        self._energies: list[float] = []  # mean square per block
        self.samples = 0
        self.any_sound = False
        self._peak = 0.0
        self._up = _upsampler(rate) if true_peak else None

    def _bounds(self, j: int) -> tuple[int, int]:
        t_g, step, rate = self._block_size, self._step, self.rate
        return int(t_g * (j * step) * rate), int(t_g * (j * step + 1) * rate)

    def feed(self, x: np.ndarray, last: bool = False) -> None:
        """Add the next `x` (float32 or float64, shape (n,)); `last=True` with the final window (may be empty)."""
        x64 = np.asarray(x, np.float64)
        if len(x64):
            self.any_sound = self.any_sound or bool(np.any(x64))
            self._peak = max(self._peak, float(np.max(np.abs(x64))))
        if self._up is not None:
            up = self._up.resample_chunk(x64, last=last)
            if len(up):
                self._peak = max(self._peak, float(np.max(np.abs(up))))
        y = x64
        for i, (b, a, gain) in enumerate(self._filters):
            filtered, self._zi[i] = self._lfilter(b, a, y, zi=self._zi[i])
            y = gain * filtered
        self.samples += len(x64)
        self._buf = np.concatenate([self._buf, y]) if len(self._buf) else y
        self._blocks(final=False)

    def _blocks(self, final: bool) -> None:
        """Mean square of every block whose samples have all arrived (or, at the end, every block BS.1770
        counts: pyloudnorm's block count, the last block cut short by the signal's end)."""
        norm = 1.0 / (self._block_size * self.rate)
        total = self._count() if final else None
        while True:
            j = len(self._energies)
            if total is not None and j >= total:
                break
            lo, hi = self._bounds(j)
            if total is None and hi > self.samples:
                break
            seg = self._buf[lo - self._buf_start : min(hi, self.samples) - self._buf_start]
            self._energies.append(norm * np.sum(np.square(seg)))
            nxt = self._bounds(j + 1)[0]
            if nxt > self._buf_start:
                self._buf = self._buf[nxt - self._buf_start :]
                self._buf_start = nxt

    def _count(self) -> int:
        t = self.samples / self.rate
        return int(np.round((t - self._block_size) / (self._block_size * self._step))) + 1

    def result(self) -> Loudness:
        """Call once, after the last window. Silence (or less than one block) reads SILENCE_LUFS."""
        self._blocks(final=True)
        peak = self._peak
        tp = 20 * math.log10(peak) if peak > 0 else -math.inf
        if self.samples < int(self.rate * self._block_size) or not self.any_sound:
            return Loudness(SILENCE_LUFS, tp)
        lufs = gated_loudness(np.asarray(self._energies, np.float64))
        return Loudness(lufs if math.isfinite(lufs) else SILENCE_LUFS, tp)


def gated_loudness(z: np.ndarray) -> float:
    """BS.1770-4 gating (eqs. 4-7) over block mean squares `z` (mono, channel gain 1.0), as pyloudnorm does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        blocks = -0.691 + 10.0 * np.log10(z)
        above = z[blocks >= -70.0]
        gamma_r = -0.691 + 10.0 * np.log10(np.mean(above) if len(above) else np.nan) - 10.0
        kept = z[(blocks > gamma_r) & (blocks > -70.0)]
        avg = np.nan_to_num(np.mean(kept)) if len(kept) else 0.0
        return float(-0.691 + 10.0 * np.log10(avg))


class PeakLimiter:
    """Look-ahead true-peak limiter, streamed: a gain curve that reaches its floor before each over-ceiling
    peak and recovers smoothly after it (5 ms attack, 50 ms hold/release). Feed windows; each call returns
    the limited samples that are final so far (float32), lagging the input by at most about 60 ms plus the
    resampler's delay. Where nothing exceeds the ceiling the gain is exactly 1.0 and the output is the input.

    Same arithmetic as the whole-signal version (scipy's minimum filter and uniform filter's running sum,
    `mode="nearest"`), so the output is bit-identical to it."""

    def __init__(self, rate: int, ceiling_db: float) -> None:
        from scipy.ndimage import minimum_filter1d

        self._min_filter = minimum_filter1d
        self.ceiling = 10 ** (ceiling_db / 20)
        self.attack = max(1, int(0.005 * rate))
        release = max(1, int(0.05 * rate))
        self.size = 2 * self.attack + release
        self._up = _upsampler(rate)
        self._x = np.zeros(0, np.float32)  # input awaiting its oversampled envelope
        self._up_buf = np.zeros(0)
        # Minimum filter: `_need` is the 'nearest'-extended need line from the next output's window start on.
        self._xn = np.zeros(0, np.float32)
        self._need: np.ndarray | None = None
        # Running mean: `_ext` is the extended held line from the value the next update subtracts on.
        self._xm = np.zeros(0, np.float32)
        self._needm = np.zeros(0)
        self._ext: np.ndarray | None = None
        self._tmp: float | None = None  # the running sum

    def feed(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Limit the next window `x` (shape (n,)); `last=True` with the final one flushes everything."""
        x = np.asarray(x, np.float32)
        up = self._up.resample_chunk(x.astype(np.float64), last=last)
        self._x = np.concatenate([self._x, x])
        self._up_buf = np.concatenate([self._up_buf, up])
        k = len(self._x) if last else min(len(self._x), len(self._up_buf) // OVERSAMPLE)
        xs, self._x = self._x[:k], self._x[k:]
        m = min(k, len(self._up_buf) // OVERSAMPLE)
        env = np.abs(xs).astype(np.float64)
        if m:
            peaks = _phase_peaks(self._up_buf[: m * OVERSAMPLE])
            env[:m] = np.maximum(env[:m], peaks)
        self._up_buf = self._up_buf[m * OVERSAMPLE :]
        need = np.minimum(1.0, self.ceiling / np.maximum(env, 1e-12))
        return self._hold(xs, need, last)

    def _hold(self, xs: np.ndarray, need: np.ndarray, last: bool) -> np.ndarray:
        """held = the lowest need over [i - size//2, i + size - size//2 - 1] ('nearest' at both ends)."""
        before, after = self.size // 2, self.size - self.size // 2 - 1
        if self._need is None:
            if not len(need):
                return self._mean(xs, need, need, last)
            self._need = np.full(before, need[0])
        self._need = np.concatenate([self._need, need])
        self._xn = np.concatenate([self._xn, xs])
        if last:
            self._need = np.concatenate([self._need, np.full(after, self._need[-1])])
        ready = max(0, len(self._need) - before - after)
        held = self._min_filter(self._need, self.size, mode="nearest")[before : before + ready] if ready else need[:0]
        need_out = self._need[before : before + ready]
        x_out, self._xn = self._xn[:ready], self._xn[ready:]
        self._need = self._need[ready:]
        return self._mean(x_out, need_out, held, last)

    def _mean(self, xs: np.ndarray, need: np.ndarray, held: np.ndarray, last: bool) -> np.ndarray:
        """scipy.ndimage.uniform_filter1d(held, attack, mode="nearest") as its C loop runs it: a running sum
        sum[0] of the first `attack` values of the extended line, sum[i] = sum[i-1] + (ext[i-1+attack] -
        ext[i-1]), out[i] = sum[i] / attack (scipy >= 1.11's NI_UniformFilter1D); np.cumsum adds in that order."""
        a = self.attack
        before, after = a // 2, a - a // 2 - 1
        if self._ext is None:
            if not len(held):
                return xs[:0]
            self._ext = np.full(before, held[0])
        self._ext = np.concatenate([self._ext, held])
        self._xm = np.concatenate([self._xm, xs])
        self._needm = np.concatenate([self._needm, need])
        if last:
            self._ext = np.concatenate([self._ext, np.full(after, self._ext[-1])])
        outs = []
        if self._tmp is None:
            if len(self._ext) < a:
                return xs[:0]
            tmp = 0.0
            for v in self._ext[:a]:
                tmp += float(v)
            self._tmp = tmp
            outs.append(np.array([tmp / a]))
        # After the first output, ext[0] is what the next output subtracts and ext[a] what it adds.
        n_more = len(self._ext) - a
        if n_more > 0:
            d = self._ext[a : a + n_more] - self._ext[:n_more]
            run = np.cumsum(np.concatenate([[self._tmp], d]))[1:]
            self._tmp = float(run[-1])
            outs.append(run / a)
            self._ext = self._ext[n_more:]
        smooth = np.concatenate(outs) if outs else np.zeros(0)
        k = len(smooth)
        gain = np.minimum(smooth, self._needm[:k])
        out = (self._xm[:k] * gain).astype(np.float32)
        self._xm, self._needm = self._xm[k:], self._needm[k:]
        return out


def _phase_peaks(up: np.ndarray) -> np.ndarray:
    """The largest |value| of each run of OVERSAMPLE oversampled values (shape (m * OVERSAMPLE,) -> (m,)): the
    same values as `np.abs(up).reshape(m, OVERSAMPLE).max(axis=1)`, whose reduction over a short inner axis
    ran ~10x slower, as a pairwise maximum of the phases."""
    a = np.abs(up)
    return functools.reduce(np.maximum, [a[i::OVERSAMPLE] for i in range(OVERSAMPLE)])


def true_peak_db(audio: np.ndarray, rate: int) -> float:
    if len(audio) == 0:
        return -math.inf
    meter = LoudnessMeter(rate)
    meter.feed(audio, last=True)
    return meter.result().true_peak_db


def measure(audio: np.ndarray, rate: int) -> Loudness:
    meter = LoudnessMeter(rate)
    for i in range(0, max(len(audio), 1), WINDOW):
        meter.feed(audio[i : i + WINDOW], last=i + WINDOW >= len(audio))
    return meter.result()


def _limit(audio: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    limiter = PeakLimiter(rate, ceiling_db)
    parts = [limiter.feed(audio[i : i + WINDOW], last=i + WINDOW >= len(audio)) for i in range(0, len(audio), WINDOW)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def gain_for(level: Loudness, target_lufs: float) -> float:
    """The linear gain that moves `level` to `target_lufs` (applied to float32 audio as a float32 multiply)."""
    return 10 ** ((target_lufs - level.integrated_lufs) / 20)


def normalize(
    audio: np.ndarray, rate: int, target_lufs: float, true_peak_limit_db: float
) -> tuple[np.ndarray, Loudness]:
    """Gain to `target_lufs`, then limit true peaks under `true_peak_limit_db`; repeated until both hold
    (limiting lowers loudness a little, so the gain is corrected and the limiter re-run). Whole-array form of
    output.scratch.normalize_file, same result."""
    out = audio.astype(np.float32)
    if not np.any(out):
        return out, measure(out, rate)
    ceiling = true_peak_limit_db - 0.3  # head-room for the encoder's own overshoot
    for _ in range(10):
        level = measure(out, rate)
        if level.integrated_lufs <= SILENCE_LUFS:
            return out, level
        out = (out * gain_for(level, target_lufs)).astype(np.float32)
        if true_peak_db(out, rate) > ceiling:
            out = _limit(out, rate, ceiling)
        level = measure(out, rate)
        if abs(level.integrated_lufs - target_lufs) <= 0.1 and level.true_peak_db <= true_peak_limit_db:
            break
    return out, measure(out, rate)
