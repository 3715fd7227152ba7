"""Output formats batchtts writes, by file suffix (shared by job validation and encoding)."""

from __future__ import annotations

OUTPUT_FORMATS = {
    ".wav": "wav",
    ".flac": "flac",
    ".mp3": "mp3",
    ".ogg": "opus",
    ".opus": "opus",
    ".m4a": "aac",
    ".m4b": "aac",
}

# Sample rates each encoder can hold; WAV and FLAC hold any rate a job may ask for (8-192 kHz).
_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
SAMPLE_RATES: dict[str, tuple[int, ...]] = {
    "mp3": _MPEG_RATES,
    "opus": (8000, 12000, 16000, 24000, 48000),
    "aac": (7350, *_MPEG_RATES, 64000, 88200, 96000),
}
