"""CMU pocketsphinx with its bundled US English model: small, CPU-only, no download. Rough on single
sentences (about 0.2 WER on clean Piper speech), but a dropped phrase or babble still stands out."""

from __future__ import annotations

import numpy as np
import soxr

from batchtts.verify.asr.base import AsrBackend

RATE = 16000  # the bundled acoustic model's sample rate


class PocketsphinxBackend(AsrBackend):
    name = "pocketsphinx"
    languages = ("en",)

    def __init__(self):
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=RATE, loglevel="FATAL")

    @classmethod
    def load(cls, device: str = "cpu") -> PocketsphinxBackend:
        return cls()

    def transcribe(self, audio: list[np.ndarray], sample_rate: list[int], language: str) -> list[str]:
        out = []
        for clip, rate in zip(audio, sample_rate, strict=True):
            pcm = np.clip(soxr.resample(np.asarray(clip, np.float32), rate, RATE), -1, 1)
            self.decoder.start_utt()
            self.decoder.process_raw((pcm * 32767).astype(np.int16).tobytes(), full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            out.append(hyp.hypstr if hyp else "")
        return out
