"""Piper (VITS) voices run with seeded sampling noise, the vocoder in fixed windows.

Piper's ONNX graph draws its noise with RandomNormalLike, whose state lives in the session, so the
same sentence sounds different from run to run. At load time the two draws are rewritten into
slices of extra inputs; each chunk's noise comes from its own seed, which makes its audio depend on
its key alone.

The graph is then cut in two where VITS hands its latent `z` (192 channels a frame, 256 samples a frame) to
the HiFi-GAN decoder (Kim et al. 2021, VITS, fig. 1c; Kong et al. 2020, HiFi-GAN): the front (text encoder,
duration predictor, flow) runs once per sequence, and the decoder over windows of VOCODER_WINDOW frames,
each read with VOCODER_HALO frames of context on either side. The decoder is convolutional with a receptive
field of ~11 frames each side (conv_pre's 7 taps, three transposed convolutions, residual blocks of kernels
3/5/7 with dilations (1, 2), (2, 6) and (3, 12) after each), so a window's samples are the whole run's up to
float rounding (measured: ~1e-7 apart; 8 frames of context leave ~7e-4 at the seams, 12 leave rounding). Its
activations, ~230 KiB a frame, were what a run's peak memory was made of (a 300-character chunk ~330 MiB); in
windows they are a constant ~90 MiB per lane with the arenas, whatever the chunk's length, and a window is also
a small unit of work, so the threads stay busy to the end of a batch.

Every run uses one onnxruntime thread, a constant: the intra-op thread count changes how the kernels split
their work and so some samples by ~1e-6 (1, 2 and 4 threads give three different results). The cores are
used by running fronts and windows side by side, one per lane (VITS's many small kernels scale poorly within
one run: on Frankenstein ch. 5 two intra-op threads took 93 CPU seconds against 78 for two sequences side by
side). Windows sit at fixed frames of each sequence, so a sequence's samples do not depend on what else is
in the batch, on the lane count or on the core count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from piper.config import PiperConfig
from piper.voice import PiperVoice

VOCODER_WINDOW = 256  # frames a decoder run writes (~3 s of audio); CPU as decoding the chunk whole
VOCODER_HALO = 16  # frames of context read on each side (the receptive field is ~11)
# Peak memory of one lane: a decoder window's activations or the front of a 300-character chunk, with its share
# of the arenas (measured on the shipped voice over Frankenstein ch. 5: ~90 MiB a lane).
# EmbeddedEngine.use_memory_budget runs as many lanes as fit.
LANE_BYTES = 96 * 2**20

_NOISE_INPUTS = {"/dp/RandomNormalLike": "noise_dp", "/RandomNormalLike": "noise_z"}
_DECODER = "/dec/conv_pre/Conv"  # the HiFi-GAN decoder's first node; its input is z * y_mask


def _seeded_model(model_path: Path) -> onnx.ModelProto:
    model = onnx.load(str(model_path))
    graph = model.graph
    ceil = [n for n in graph.node if n.op_type == "Ceil"]
    randoms = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    decoder = [n for n in graph.node if n.name == _DECODER]
    if len(ceil) != 1 or sorted(n.name for n in randoms) != sorted(_NOISE_INPUTS) or len(decoder) != 1:
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
    return model


def split_graphs(model_path: Path) -> tuple[bytes, bytes, str]:
    """(front, decoder, latent name): the seeded graph cut at the decoder's input. The front maps
    (input, input_lengths, scales, noise_dp, noise_z) to (z (1, 192, frames), frames per id); the decoder maps
    z (1, 192, frames) to audio (1, 1, frames * 256) in [-1, 1]. Raises ValueError for a graph of another shape."""
    model = _seeded_model(model_path)
    latent = next(n for n in model.graph.node if n.name == _DECODER).input[0]
    widths = model.graph.output[-1].name
    cut = onnx.utils.Extractor(model)
    front = cut.extract_model([i.name for i in model.graph.input], [latent, widths])
    decoder = _planar(cut.extract_model([latent], [model.graph.output[0].name]))
    return front.SerializeToString(), decoder.SerializeToString(), latent


def _planar(decoder: onnx.ModelProto) -> onnx.ModelProto:
    """The decoder with its 1-D convolutions as 2-D ones of height 1, the same arithmetic up to float rounding
    (~1e-7): onnxruntime runs 2-D convolutions in its blocked NCHWc layout (its NchwcTransformer), 1-D ones
    through im2col and a GEMM; measured on the shipped voice, a window takes ~30% less CPU. The latent gets a
    height axis on the way in and loses it on the way out; between them the graph holds only convolutions and
    element-wise operators (LeakyReLU, Add, Div, Tanh), which take any rank. Raises ValueError otherwise."""
    graph = decoder.graph
    weights = {t.name: t for t in graph.initializer}
    kinds = {n.op_type for n in graph.node}
    if not kinds <= {"Conv", "ConvTranspose", "LeakyRelu", "Add", "Div", "Tanh", "Unsqueeze"}:
        raise ValueError(f"the decoder holds operators this engine does not know: {sorted(kinds)}")
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        w = weights[node.input[1]]
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w)[:, :, None, :], w.name))
        for attr in node.attribute:
            one_d = list(attr.ints)
            if attr.name in ("kernel_shape", "dilations", "strides", "output_padding"):
                attr.ClearField("ints")
                attr.ints.extend([1, *one_d])
            elif attr.name == "pads":  # [begin, end] -> [height begin, begin, height end, end]
                attr.ClearField("ints")
                attr.ints.extend([0, one_d[0], 0, one_d[1]])
            elif attr.name == "auto_pad" and attr.s not in (b"", b"NOTSET"):
                raise ValueError(f"{node.name}: auto_pad {attr.s!r}")
    latent, audio = graph.input[0].name, graph.output[0].name
    last = next(n for n in graph.node if audio in n.output)  # Unsqueeze (1, N) -> (1, 1, N)
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "planar_axis"))
    for node in graph.node:
        node.input[:] = [f"{latent}_planar" if x == latent else x for x in node.input]
    last.input[0], tanh = f"{last.input[0]}_line", last.input[0]
    graph.node.insert(0, helper.make_node("Unsqueeze", [latent, "planar_axis"], [f"{latent}_planar"]))
    at = list(graph.node).index(last)
    graph.node.insert(at, helper.make_node("Squeeze", [tanh, "planar_axis"], [f"{tanh}_line"]))
    graph.ClearField("value_info")
    return decoder


def windows(frames: int) -> list[tuple[int, int, int, int]]:
    """(lo, start, end, hi) for each decoder window of a `frames`-long latent: it runs on frames [lo, hi) and
    keeps [start, end), VOCODER_HALO frames of context each side where the latent has them."""
    return [
        (max(0, s - VOCODER_HALO), s, min(frames, s + VOCODER_WINDOW), min(frames, s + VOCODER_WINDOW + VOCODER_HALO))
        for s in range(0, frames, VOCODER_WINDOW)
    ]


class SeededPiper:
    def __init__(self, model_path: Path, config_path: Path, threads: int | None = None):
        self.config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
        opts = ort.SessionOptions()
        self.threads = threads or os.cpu_count() or 1
        self.lanes = self.threads
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.use_deterministic_compute = True
        # No memory patterns: onnxruntime plans and keeps one activation block per input shape it has seen, and
        # every front (and every sequence's last window) has a shape of its own, so the blocks piled up in the
        # arena (measured on Frankenstein ch. 5: 516 MiB peak with them, 364 without, the same CPU time).
        opts.enable_mem_pattern = False
        front, decoder, self._latent = split_graphs(model_path)
        # Loaded from files, not from bytes: from bytes onnxruntime keeps ~60 MiB more resident.
        with tempfile.TemporaryDirectory(prefix="batchtts-piper-") as tmp:
            (Path(tmp) / "front.onnx").write_bytes(front)
            (Path(tmp) / "decoder.onnx").write_bytes(decoder)
            del front, decoder
            self.front = ort.InferenceSession(str(Path(tmp) / "front.onnx"), opts, providers=["CPUExecutionProvider"])
            self.decoder = ort.InferenceSession(
                str(Path(tmp) / "decoder.onnx"), opts, providers=["CPUExecutionProvider"]
            )
        _release_heap()
        # Piper's own phonemizer (espeak-ng data bundled in its wheel); its session is never run.
        self._voice = PiperVoice(session=self.front, config=self.config)
        self.sample_rate = self.config.sample_rate
        self.hop = 256
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="piper")

    def phoneme_ids(self, text: str) -> list[int]:
        phonemes = [p for sentence in self._voice.phonemize(text) for p in sentence]
        return self._voice.phonemes_to_ids(phonemes) if phonemes else []

    def _front(self, ids: list[int], seed: int, scales: np.ndarray) -> tuple[np.ndarray, int]:
        """(z (1, 192, frames), samples the sequence has)."""
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
                z, widths = self.front.run(None, feeds)
                return z, int(widths[0].sum()) * self.hop
            except (
                ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                ort.capi.onnxruntime_pybind11_state.RuntimeException,
            ):
                if frames > n_ids * 200:
                    raise
                frames *= 2
                rng_z = np.random.default_rng([seed, 2])

    def _decode(self, z: np.ndarray, window: tuple[int, int, int, int], audio: np.ndarray) -> None:
        """Write the samples of `window` (see `windows`) of latent `z` into `audio`."""
        lo, start, end, hi = window
        y = self.decoder.run(None, {self._latent: np.ascontiguousarray(z[:, :, lo:hi])})[0].reshape(-1)
        audio[start * self.hop : end * self.hop] = y[(start - lo) * self.hop : (end - lo) * self.hop]

    def synthesize(
        self,
        texts: list[str],
        seeds: list[int],
        noise_scale: float,
        length_scale: float,
        noise_w: float,
        on_done: Callable[[int, np.ndarray], None] | None = None,
    ) -> list[np.ndarray]:
        """One waveform per text (float32 in [-1, 1]); `on_done(index, audio)` is called on the lane that finished
        it, with the array returned for it. Sequences start in the order given and finish in about that order.

        Each lane starts the next sequence's front when no front is running (so the next latent is ready before
        the windows run out, and a batch does not end with one lane waiting on a front), else takes the oldest
        waiting decoder window, else another front; it stops when neither is left nor can appear."""
        scales = np.asarray([noise_scale, length_scale, noise_w], np.float32)
        ids = [self.phoneme_ids(t) for t in texts]
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(ids)
        fronts = deque(k for k in range(len(ids)) if len(ids[k]) > 2)  # only start/end markers: nothing to say
        decodes: deque[tuple[int, tuple[int, int, int, int]]] = deque()  # (sequence, window), oldest first
        latent: dict[int, np.ndarray] = {}  # sequence -> z, while it has windows left
        audio: dict[int, np.ndarray] = {}  # sequence -> its samples so far
        left: dict[int, int] = {}  # sequence -> windows not yet decoded
        length: dict[int, int] = {}  # sequence -> its samples (the frames its ids asked for)
        gate = threading.Condition()
        running = [0]  # fronts in progress: each may still add windows

        def lane() -> None:
            while True:
                with gate:
                    gate.wait_for(lambda: decodes or fronts or not running[0])
                    if not decodes and not fronts:
                        return
                    if fronts and (not running[0] or not decodes):  # the next front runs while windows do
                        k, window = fronts.popleft(), None
                        running[0] += 1
                    else:
                        k, window = decodes.popleft()
                        z, buf = latent[k], audio[k]
                if window is None:
                    try:
                        z, samples = self._front(ids[k], seeds[k], scales)
                    except BaseException:
                        with gate:
                            running[0] -= 1
                            gate.notify_all()
                        raise
                    cut = windows(z.shape[2])
                    with gate:  # the front is done and its windows queued at once: no lane leaves in between
                        running[0] -= 1
                        latent[k], left[k], length[k] = z, len(cut), samples
                        audio[k] = np.empty(z.shape[2] * self.hop, np.float32)
                        decodes.extend((k, w) for w in cut)
                        gate.notify_all()
                    finished = None if cut else np.zeros(0, np.float32)
                else:
                    self._decode(z, window, buf)
                    with gate:
                        left[k] -= 1
                        finished = None if left[k] else np.clip(audio.pop(k)[: length.pop(k)], -1.0, 1.0)
                        if finished is not None:
                            del latent[k], left[k]
                if finished is not None:
                    out[k] = finished
                    if on_done is not None:
                        on_done(k, finished)

        for k in range(len(ids)):
            if len(ids[k]) <= 2 and on_done is not None:
                on_done(k, out[k])
        for lane_done in [self._pool.submit(lane) for _ in range(min(self.lanes, self.threads))]:
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
