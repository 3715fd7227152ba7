"""Checks that a chunk's audio is plausible speech for its text, so bad takes are retried, not stitched.

The bounds are deliberately loose: they catch the failures users report (NaN output, silence, words
dropped, a model babbling until its length limit), not a narrator's natural pace.
"""

from __future__ import annotations

import numpy as np

from batchtts.jobs.markup import speakable

SILENCE_RMS = 1e-3  # -60 dBFS
# Seconds per speakable character: faster than any narrator / slower than any narrator.
MIN_SECONDS_PER_CHAR = {"zh": 1 / 12, "en": 1 / 40}
MAX_SECONDS_PER_CHAR = {"zh": 1.5, "en": 0.5}
MIN_LONG_SECONDS = 3.0  # short texts may take a little longer than the per-character bound


def check(text: str, language: str, audio: np.ndarray, rate: int, truncated: bool = False) -> str | None:
    """None when the audio is acceptable, else why it is not (one line)."""
    if audio.size and not np.isfinite(audio).all():
        return "audio contains NaN or infinite samples"
    n = speakable(text)
    seconds = len(audio) / rate if rate else 0.0
    if n == 0:
        return None
    if seconds == 0 or float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
        return "audio is silent"
    shortest = n * MIN_SECONDS_PER_CHAR.get(language, MIN_SECONDS_PER_CHAR["en"])
    if seconds < shortest:
        return f"audio too short ({seconds:.2f} s for {n} characters; words dropped?)"
    if truncated:
        return "decoding hit its maximum length without ending (babbling?)"
    longest = max(MIN_LONG_SECONDS, n * MAX_SECONDS_PER_CHAR.get(language, MAX_SECONDS_PER_CHAR["en"]))
    if seconds > longest:
        return f"audio too long ({seconds:.1f} s for {n} characters; babbling?)"
    return None
