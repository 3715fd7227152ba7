"""The flow and vocoder's activation memory per mel frame, for the planner (no torch import: `batchtts plan`
reads cost models without loading a model)."""

from __future__ import annotations

SAMPLES_PER_FRAME = 480  # HiFT at 24 kHz: 8 x 5 x 3 upsampling, iSTFT hop 4


def audio_bytes_per_frame(dim: int = 768, ff: int = 1536, text_dim: int = 512, hift_base: int = 512, dtype_bytes=2):
    """Estimated activation bytes per mel frame of one row, flow and vocoder (the official sizes by default).

    Flow: two rows (guidance) of about 6 hidden + 2 feed-forward + 2 text vectors in its dtype, plus the
    fp32 Euler state. Vocoder (fp32): about 8 live tensors of the last upsampling stage (hift_base / 8
    channels x 120 samples a frame) plus the 9-harmonic source at 480 samples a frame (about 8 tensors)."""
    flow = 2 * (6 * dim + 2 * ff + 2 * text_dim) * dtype_bytes + 4 * 80 * 4
    vocoder = 8 * (hift_base // 8) * (SAMPLES_PER_FRAME // 4) * 4 + 8 * 9 * SAMPLES_PER_FRAME * 4
    return flow, vocoder
