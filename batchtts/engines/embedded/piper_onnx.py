"""Piper (VITS) voices run with seeded sampling noise.

Piper's ONNX graph draws its noise with RandomNormalLike, whose state lives in the session, so the
same sentence sounds different from run to run. At load time the two draws are rewritten into
slices of extra inputs; each chunk's noise comes from its own seed, which makes its audio depend on
its key alone. Every sequence runs on one onnxruntime thread, a constant: the intra-op thread count changes how
the kernels split their work and so some samples by ~1e-6 (measured: 1, 2 and 4 threads give three different
results), while sequences run side by side on one session give the same samples as each alone. So a sequence's
arithmetic is the same whatever else is in the batch and whatever the machine's core count; the cores are used by
running sequences side by side, one per thread (VITS's many small kernels scale poorly within one run: on
Frankenstein ch. 5 two intra-op threads took 93 CPU seconds against 78 for two sequences side by side). The
vocoder's activations (~520 KiB per phoneme id, ~330 MiB for a 300-character chunk) are what a run's peak memory
is made of, so a sequence starts beside others only while the phoneme ids in flight stay within the memory
budget (`ids_in_flight`); each free thread takes the longest waiting sequence that fits, so a long chunk runs
beside a short one when two long ones do not fit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from piper.config import PiperConfig
from piper.voice import PiperVoice

# Vocoder activations per phoneme id (times length_scale): ~2.25 frames per id at ~230 KiB per frame, measured
# on the shipped voice (peak RSS over Frankenstein ch. 5). The ids in flight are bounded by the run's memory
# budget (EmbeddedEngine.use_memory_budget); IDS_IN_FLIGHT is the bound before one is given: one 300-character
# English chunk (the engine's max_chars), ~330 MiB. A sequence longer than the bound runs alone.
BYTES_PER_ID = 540 * 1024
IDS_IN_FLIGHT = 640

_NOISE_INPUTS = {"/dp/RandomNormalLike": "noise_dp", "/RandomNormalLike": "noise_z"}


def _seeded_graph(model_path: Path) -> bytes:
    model = onnx.load(str(model_path))
    graph = model.graph
    ceil = [n for n in graph.node if n.op_type == "Ceil"]
    randoms = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    if len(ceil) != 1 or sorted(n.name for n in randoms) != sorted(_NOISE_INPUTS):
        raise ValueError(f"{model_path} is not a Piper VITS graph this engine knows how to seed")
    # Frames per phoneme id, so each sequence's length is known (piper's alignment output).
    graph.output.append(helper.make_tensor_value_info(ceil[0].output[0], TensorProto.FLOAT, None))
    zeros = helper.make_tensor("noise_slice_start", TensorProto.INT64, [3], [0, 0, 0])
    graph.initializer.append(zeros)
    for node in randoms:
        name = _NOISE_INPUTS[node.name]
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", None, None]))
        at = list(graph.node).index(node)
        graph.node.remove(node)
        shape = helper.make_node("Shape", [node.input[0]], [f"{name}_shape"], name=f"{name}_shape")
        cut = helper.make_node(
            "Slice", [name, "noise_slice_start", f"{name}_shape"], [node.output[0]], name=f"{name}_slice"
        )
        graph.node.insert(at, cut)
        graph.node.insert(at, shape)
    return model.SerializeToString()


class SeededPiper:
    def __init__(self, model_path: Path, config_path: Path, threads: int | None = None):
        self.config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
        opts = ort.SessionOptions()
        self.threads = threads or os.cpu_count() or 1
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.use_deterministic_compute = True
        # Loaded from a file, not from bytes: from bytes onnxruntime keeps ~60 MiB more resident.
        with tempfile.TemporaryDirectory(prefix="batchtts-piper-") as tmp:
            seeded = Path(tmp) / "seeded.onnx"
            seeded.write_bytes(_seeded_graph(model_path))
            self.session = ort.InferenceSession(str(seeded), opts, providers=["CPUExecutionProvider"])
        _release_heap()
        # A run may hand the arena's free regions back at its end: sequences differ in length, so blocks sized for
        # one rarely fit the next and an arena that only grows ends ~200 MiB above the largest sequence's need.
        # Shrinking re-faults the whole arena on the next run, though (~9% more CPU on Frankenstein ch. 5), so
        # under a budget with room for two long chunks only a call's last run shrinks; under a tighter one, every
        # run does (per-call shrinking peaked ~120 MiB higher: 718 vs 594 MiB with one long chunk in flight).
        self._keep = ort.RunOptions()
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # Piper's own phonemizer (espeak-ng data bundled in its wheel), driving our session.
        self._voice = PiperVoice(session=self.session, config=self.config)
        self.sample_rate = self.config.sample_rate
        self.hop = 256
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="piper")
        self.ids_in_flight = IDS_IN_FLIGHT

    def phoneme_ids(self, text: str) -> list[int]:
        phonemes = [p for sentence in self._voice.phonemize(text) for p in sentence]
        return self._voice.phonemes_to_ids(phonemes) if phonemes else []

    def _run(self, ids: list[int], seed: int, scales: np.ndarray, shrink: bool = True) -> np.ndarray:
        if len(ids) <= 2:  # only start/end markers: nothing to say
            return np.zeros(0, np.float32)
        n_ids = len(ids)
        frames = int(n_ids * 8 * max(scales[1], 1.0)) + 64
        noise_dp = np.random.default_rng([seed, 1]).standard_normal((n_ids, 2), dtype=np.float32).T
        rng_z = np.random.default_rng([seed, 2])
        while True:
            # Drawn time-major so the first frames are the same whatever the total length.
            noise_z = rng_z.standard_normal((frames, 192), dtype=np.float32).T
            feeds = {
                "input": np.asarray([ids], np.int64),
                "input_lengths": np.asarray([n_ids], np.int64),
                "scales": scales,
                "noise_dp": noise_dp[None],
                "noise_z": np.ascontiguousarray(noise_z)[None],
            }
            try:
                audio, widths = self.session.run(None, feeds, self._shrink if shrink else self._keep)
                break
            except (
                ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                ort.capi.onnxruntime_pybind11_state.RuntimeException,
            ):
                if frames > n_ids * 200:
                    raise
                frames *= 2
                rng_z = np.random.default_rng([seed, 2])
        n = int(widths[0].sum()) * self.hop
        return np.clip(audio.reshape(-1)[:n], -1.0, 1.0).astype(np.float32)

    def synthesize(
        self,
        texts: list[str],
        seeds: list[int],
        noise_scale: float,
        length_scale: float,
        noise_w: float,
        on_done: Callable[[int, np.ndarray], None] | None = None,
    ) -> list[np.ndarray]:
        """One waveform per text (float32 in [-1, 1]); `on_done(index, audio)` is called on the synthesising thread
        as each is done (after its memory is released to the other sequences), with the array returned for it."""
        scales = np.asarray([noise_scale, length_scale, noise_w], np.float32)
        ids = [self.phoneme_ids(t) for t in texts]
        cost = [len(i) * max(length_scale, 1.0) for i in ids]
        waiting = sorted(range(len(ids)), key=lambda k: -cost[k])  # longest first
        gate = threading.Condition()
        in_flight = [0.0, 0]  # phoneme ids, sequences
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(ids)

        tight = self.ids_in_flight < 2 * IDS_IN_FLIGHT  # room for fewer than two long chunks: memory comes first

        def fitting() -> int | None:
            """The longest waiting sequence that fits beside those in flight (any, when none is in flight)."""
            return next((k for k in waiting if in_flight[1] == 0 or in_flight[0] + cost[k] <= self.ids_in_flight), None)

        def lane() -> None:
            while True:
                with gate:
                    gate.wait_for(lambda: not waiting or fitting() is not None)
                    if not waiting:
                        return
                    k = fitting()
                    waiting.remove(k)
                    last = not waiting  # the call's last sequence (decided here, under the gate)
                    in_flight[0] += cost[k]
                    in_flight[1] += 1
                try:
                    out[k] = self._run(ids[k], seeds[k], scales, shrink=tight or last)
                finally:
                    with gate:
                        in_flight[0] -= cost[k]
                        in_flight[1] -= 1
                        gate.notify_all()
                if on_done is not None:
                    on_done(k, out[k])

        for lane_done in [self._pool.submit(lane) for _ in range(min(self.threads, len(ids)))]:
            lane_done.result()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _release_heap() -> None:
    """Return freed heap to the OS now and keep large blocks returnable; glibc only, elsewhere nothing.

    malloc_trim hands back the rewritten graph's freed protobuf (~25 MiB). A fixed 1 MiB mmap threshold makes
    every block of a MiB or more (activations, arena regions, chunk audio) its own mapping, unmapped when freed;
    glibc's default threshold rises to 32 MiB after the first such free, and blocks below it stay in a heap that
    fragments across sequences of different lengths (~90 MiB of peak on Frankenstein ch. 5). Process-wide.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return
    libc.malloc_trim(0)
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
