"""Intelligibility round trip: transcribe speech with pocketsphinx's bundled English model, score with jiwer."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import soxr
from pocketsphinx import Decoder

_decoder: Decoder | None = None


def transcribe(audio: np.ndarray, rate: int) -> str:
    global _decoder
    if _decoder is None:
        _decoder = Decoder(samprate=16000, loglevel="FATAL")
    pcm = np.clip(soxr.resample(np.asarray(audio, np.float32), rate, 16000), -1, 1)
    _decoder.start_utt()
    _decoder.process_raw((pcm * 32767).astype(np.int16).tobytes(), full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr if hyp else ""


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalise(r) for r in references], [normalise(h) or "-" for h in hypotheses]))
