"""CMU pocketsphinx with its bundled US English model: small, CPU-only, no download. Rough on single
sentences (about 0.3 WER on clean Piper speech), but a dropped phrase or babble still stands out.

Its decoder holds the GIL while it decodes, so a worker runs it in a child process of its own
(verify/asr/child.py) to overlap it with synthesis; the transcript is the same either way."""

from __future__ import annotations

import numpy as np
import soxr

from batchtts.verify.asr.base import AsrBackend

RATE = 16000  # the bundled acoustic model's sample rate

# Decoder settings for speed (pocketsphinx 5 defaults in brackets). Measured on the example book's 19 English
# chunks (60.7 s of audio, embedded engine) and on the same chunks garbled (noise_scale/noise_w 2.0, 93 s):
#   defaults: 0.13 s/audio s good, 0.27 garbled; WER mean 0.31 good / 0.47 garbled; flagged 0/19 good, 2/18 garbled
#   these:    0.075 s/audio s good, 0.08 garbled; WER mean 0.37 good / 0.70 garbled; flagged 0/19 good, 6/18 garbled
# (bench/bench_asr.py --device cpu). The caps on active HMMs and words per frame are what matter: babble makes
# the default search explode (garbled takes cost twice clean ones), and with the caps it stays the price of clean
# speech. Skipping the second (flat lexicon) pass and the lattice best path drops little on clean speech but
# much more on babble, so the good/garbled WER gap widens. ds=2 alone (frame downsampling) gains nothing here.
SPEED = dict(
    ds=2,  # [1] score every other frame
    topn=2,  # [4] Gaussians scored per codebook
    maxhmmpf=3000,  # [30000] active HMMs per frame
    maxwpf=10,  # [-1] distinct words exiting per frame
    pl_window=10,  # [5] phone-loop lookahead frames
    fwdflat=False,  # [True] second, flat-lexicon search pass
    bestpath=False,  # [True] lattice best-path rescoring
)


class PocketsphinxBackend(AsrBackend):
    name = "pocketsphinx"
    languages = ("en",)
    in_child = True

    def __init__(self, search: dict | None = None):
        """`search`: decoder settings (pocketsphinx Config keywords); SPEED unless given ({}: its defaults)."""
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=RATE, loglevel="FATAL", **(SPEED if search is None else search))

    @classmethod
    def load(cls, device: str = "cpu") -> PocketsphinxBackend:
        return cls()

    def transcribe(self, audio: list[np.ndarray], sample_rate: list[int], language: str) -> list[str]:
        pairs = zip(audio, sample_rate, strict=True)
        return [self.transcribe_payload(self.payload(clip, rate), language) for clip, rate in pairs]

    @classmethod
    def payload(cls, clip: np.ndarray, rate: int) -> bytes:
        """`clip` as int16 16 kHz mono samples (`pcm16`), native byte order: what the decoder reads."""
        return pcm16(clip, rate).tobytes()

    def transcribe_payload(self, payload: bytes, language: str) -> str:
        """The transcript of one utterance given as `payload` (int16 16 kHz mono samples). The feature stage is reset
        first: its live cepstral mean would otherwise carry over from the utterances before (measured: 2 of 6 takes
        heard differently after others), and a take's transcript must depend on its audio alone, never on which
        takes the same decoder heard before it."""
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(payload, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


def pcm16(clip: np.ndarray, rate: int) -> np.ndarray:
    """`clip` (float mono in [-1, 1] at `rate` Hz) as int16 samples at 16 kHz: resampled once, in float32."""
    pcm = np.asarray(clip, np.float32)
    if rate != RATE:
        pcm = soxr.resample(pcm, rate, RATE)
    return (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
