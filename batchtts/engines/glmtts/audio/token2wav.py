"""Speech tokens -> 24 kHz waveforms for many sentences per forward: batchtts's flow (flow.py) then HiFT (hift.py).

`TokenToWave.load(ckpt_root, device)` reads the published `flow/` and `hift/` folders under the official
`ckpt/` folder; `tokens_to_audio(tokens_per_row, voice_state, seeds)` returns one waveform per row.
Rows are sorted by length and cut into batches whose padded frames (rows x longest) fit the stage's
memory: the DiT's activations per frame are small, the vocoder's (fp32, 480 samples a frame) large,
so the vocoder takes a flow batch in several slices. On CUDA the bytes per frame are measured once at
load; elsewhere they are the estimate of `audio_bytes_per_frame`.

Noise is seeded per row: the flow's from the row's seed, the vocoder's source from `seed + 1`, each on
its own generator, so a row's waveform depends on its tokens, voice and seed, never on its batch.

`pipeline()` overlaps the stages with decoding: the decoder reports each finished row (`on_row_done`),
rows are queued, and a worker thread (on its own CUDA stream) runs flow and vocoder batches while the
decode goes on. With a decoder that has no callback, every row runs after the decode. Given `on_results`
(Engine.synthesize's), the worker reports each flow batch's rows as one list of takes, on its own thread and
stream, so a verifier hears them (Whisper, batched) while the LLM keeps decoding; `results` returns those
same objects.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from batchtts import config
from batchtts.engines.base import OnResults, SynthResult, VoiceState
from batchtts.engines.glmtts.audio.cost import audio_bytes_per_frame
from batchtts.engines.glmtts.audio.flow import FlowModel
from batchtts.engines.glmtts.audio.hift import SAMPLE_RATE, HiFT

DEFAULT_MEMORY = 6 << 30
FRAMES_PER_TOKEN = 2  # 25 speech tokens -> 50 mel frames a second
# A queued flow batch starts once this many padded frames wait (or half the memory cap): with guidance that is
# 2 x 16k positions per DiT forward, enough to keep a large GPU busy, while later rows are still decoding.
START_FRAMES = 16384


def hift_seed(seed: int) -> int:
    return (seed + 1) % (1 << 63)


class TokenToWave:
    def __init__(self, flow: FlowModel, hift: HiFT, device: str, memory_bytes: int | None = None):
        self.flow, self.hift, self.device = flow, hift, device
        est = self.flow.estimator
        self.bytes_per_frame = audio_bytes_per_frame(
            est.proj_out.weight.shape[1],
            est.transformer_blocks[0].ff.ff[0][0].weight.shape[0],
            est.text_emb_layer.text_embed.weight.shape[1],
            hift.conv_pre.weight.shape[0],
            est.proj_out.weight.dtype.itemsize,
        )
        self.memory_bytes = memory_bytes or config.glmtts_audio_memory() or DEFAULT_MEMORY
        # On a CPU a row runs alone, so its audio never depends on which rows share its batch (padded
        # kernels round differently by a few ulp); a CPU gains little from batching these stages.
        self.rows_at_once = None if device == "cuda" else 1
        self.timings: dict[str, float] | None = None  # {"flow": s, "vocoder": s} when a benchmark asks
        if device == "cuda":
            self.bytes_per_frame = self._measure()

    @classmethod
    def load(cls, ckpt_root: Path, device: str = "cpu", dtype: torch.dtype | None = None) -> TokenToWave:
        """ckpt_root is the official `ckpt/` folder (flow/flow.pt, flow/config.yaml, hift/hift.pt). The DiT runs
        in bf16 on CUDA and fp32 elsewhere; the vocoder always in fp32 (its source integrates phase)."""
        if dtype is None:
            from batchtts import config

            dtype = torch.bfloat16 if config.glmtts_dtype(device) == "bf16" else torch.float32
        flow = FlowModel.from_files(Path(ckpt_root) / "flow", device, dtype)
        return cls(flow, HiFT.from_file(Path(ckpt_root) / "hift" / "hift.pt", device), device)

    def reserve_bytes(self) -> int:
        return self.memory_bytes if self.device == "cuda" else 0

    def _measure(self) -> tuple[int, int]:
        """Peak bytes per frame of a flow and a vocoder pass over one 400-frame row (CUDA)."""
        frames, out = 400, []
        tokens = [torch.zeros(frames // FRAMES_PER_TOKEN, dtype=torch.long)]
        mel = torch.zeros(0, self.flow.mel_dim)
        for stage in ("flow", "hift"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            if stage == "flow":
                noise = [self.flow.noise(len(tokens[0]), 0, self.device)]
                self.flow.sample(tokens, [mel], torch.ones(1, 192), noise)
            else:
                self.hift([torch.zeros(self.flow.mel_dim, frames, device=self.device)], [self._gen(0)])
            torch.cuda.synchronize()
            out.append(max(1, (torch.cuda.max_memory_allocated() - base) // frames))
        return out[0], out[1]

    def _gen(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def max_frames(self) -> tuple[int, int]:
        """Padded frames (rows x longest) one flow batch and one vocoder batch may hold."""
        flow, voc = self.bytes_per_frame
        return max(1, self.memory_bytes // flow), max(1, self.memory_bytes // voc)

    def tokens_to_audio(
        self,
        tokens_per_row: Sequence[Sequence[int]],
        voice_state: VoiceState | Sequence[VoiceState],
        seeds: Sequence[int],
    ) -> list[np.ndarray]:
        """One float32 waveform per row (960 samples a token); voice_state is shared or one per row."""
        voices = [voice_state] * len(tokens_per_row) if isinstance(voice_state, dict) else list(voice_state)
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(tokens_per_row)
        order = sorted(
            range(len(tokens_per_row)), key=lambda i: len(tokens_per_row[i]) + len(voices[i]["prompt_speech"])
        )
        flow_cap, _ = self.max_frames()
        batch: list[int] = []
        for i in order:
            width = self.flow.frames(len(tokens_per_row[i]) + len(voices[i]["prompt_speech"]))
            if batch and ((len(batch) + 1) * width > flow_cap or len(batch) == self.rows_at_once):
                self._run(batch, tokens_per_row, voices, seeds, out)
                batch = []
            batch.append(i)
        if batch:
            self._run(batch, tokens_per_row, voices, seeds, out)
        return out

    def _run(self, rows, tokens_per_row, voices, seeds, out) -> None:
        dev = self.device
        tokens = [
            torch.as_tensor(np.concatenate([voices[i]["prompt_speech"], np.asarray(tokens_per_row[i], np.int64)]))
            for i in rows
        ]
        mels = [torch.as_tensor(voices[i]["prompt_mel"], dtype=torch.float32) for i in rows]
        emb = torch.stack([torch.as_tensor(voices[i]["embedding"], dtype=torch.float32) for i in rows])
        noise = [self.flow.noise(len(t), int(seeds[i]), dev) for t, i in zip(tokens, rows, strict=True)]
        clock = _Clock(self.timings, dev)
        mel_out = self.flow.sample(tokens, mels, emb, noise)
        clock.lap("flow")
        live = [k for k, m in enumerate(mel_out) if m.shape[1] > 0]  # a row shorter than its prompt has no audio
        _, voc_cap = self.max_frames()
        start = 0
        while start < len(live):  # rows ascend in length, so a slice's last row is its longest
            end = start + 1
            while end < len(live) and (end + 1 - start) * mel_out[live[end]].shape[1] <= voc_cap:
                end += 1
            part = live[start:end]
            waves = self.hift([mel_out[k] for k in part], [self._gen(hift_seed(int(seeds[rows[k]]))) for k in part])
            for k, wav in zip(part, waves, strict=True):
                out[rows[k]] = wav.float().cpu().numpy()
            start = end
        clock.lap("vocoder")

    def pipeline(
        self, voice_state: VoiceState, seeds: Sequence[int], on_results: OnResults | None = None
    ) -> AudioPipeline:
        return AudioPipeline(self, voice_state, seeds, on_results)


class AudioPipeline:
    """Rows whose tokens are done are queued; a worker turns them into audio while decoding continues.

    `start()` runs queued rows on a worker thread; `submit` is the `on_row_done` of a `Decoder`
    (llm/types.py); `finish(tokens)` runs whatever is still queued (every row, when nothing was submitted)
    and returns the waveforms in row order; `results` then the takes (SynthResult per row). `on_results`: called
    on the worker with each flow batch's rows as takes, the objects `results` returns."""

    def __init__(
        self, t2w: TokenToWave, voice_state: VoiceState, seeds: Sequence[int], on_results: OnResults | None = None
    ):
        self.t2w, self.voice, self.seeds, self.on_results = t2w, voice_state, list(seeds), on_results
        self.out: list[np.ndarray | None] = [None] * len(self.seeds)
        self.ends: dict[int, tuple[tuple[int, ...], bool]] = {}  # row -> (its speech tokens, truncated)
        self.made: dict[int, SynthResult] = {}  # row -> the take reported
        self.pending: list[tuple[int, list[int]]] = []
        self.seen: set[int] = set()
        self.done = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        flow_cap, _ = t2w.max_frames()
        self.batch_frames = min(flow_cap // 2, START_FRAMES)
        self.stream = torch.cuda.Stream() if t2w.device == "cuda" else None

    def start(self) -> None:
        """Run queued rows on a worker thread from now on (otherwise they all run in `finish`)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="glmtts-audio", daemon=True)
            self.thread.start()

    def submit(self, index: int, tokens: Sequence[int], truncated: bool = False) -> None:
        with self.cond:
            self.seen.add(index)
            self.ends[index] = (tuple(tokens), bool(truncated))
            self.pending.append((index, list(tokens)))
            self.cond.notify()

    def _ready(self) -> bool:
        if self.done:
            return bool(self.pending)
        prompt = len(self.voice["prompt_speech"])
        longest = max(len(t) + prompt for _, t in self.pending) if self.pending else 0
        return len(self.pending) * longest * FRAMES_PER_TOKEN >= self.batch_frames

    def _take(self) -> list[tuple[int, list[int]]] | None:
        with self.cond:
            while not self._ready():
                if self.done:
                    return None
                self.cond.wait()
            rows, self.pending = self.pending, []
            return rows

    def _work(self) -> None:
        try:
            while (rows := self._take()) is not None:
                self._run(rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in finish()
            self.error = exc

    def _run(self, rows: list[tuple[int, list[int]]]) -> None:
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            waves = self.t2w.tokens_to_audio([t for _, t in rows], self.voice, [self.seeds[i] for i, _ in rows])
            for (i, _), wav in zip(rows, waves, strict=True):
                self.out[i] = wav
            if self.on_results is not None:  # on this stream: Whisper's kernels queue behind the vocoder's
                self.on_results([(i, self._result(i, wav)) for (i, _), wav in zip(rows, waves, strict=True)])

    def _result(self, i: int, wav: np.ndarray) -> SynthResult:
        tokens, cut = self.ends[i]
        self.made[i] = SynthResult(np.clip(wav, -1.0, 1.0).astype(np.float32), SAMPLE_RATE, len(tokens), cut, tokens)
        return self.made[i]

    def results(self, tokens: Sequence[Sequence[int]], truncated: Sequence[bool]) -> list[SynthResult]:
        """`finish`, then one take per row (clipped float32 at 24 kHz, token count, truncated, speech tokens): the
        very object reported for it where one was."""
        waves = self.finish(tokens)
        out = []
        for i, (toks, cut, wav) in enumerate(zip(tokens, truncated, waves, strict=True)):
            made = self.made.get(i)
            if made is None or made.speech_tokens != tuple(toks) or made.truncated != bool(cut):
                self.ends[i] = (tuple(toks), bool(cut))
                made = self._result(i, wav)
            out.append(made)
        return out

    def end(self, tokens: Sequence[Sequence[int]]) -> None:
        """No more rows: queue those never reported (all of them without a callback); a started worker runs
        them without waiting for `finish`."""
        with self.cond:
            self.ends |= {i: (tuple(tokens[i]), False) for i in range(len(self.out)) if i not in self.seen}
            self.pending.extend((i, list(tokens[i])) for i in range(len(self.out)) if i not in self.seen)
            self.seen.update(range(len(self.out)))
            self.done = True
            self.cond.notify()

    def abort(self) -> None:
        """The decode failed: drop queued rows and let a started worker end."""
        with self.cond:
            self.pending, self.done = [], True
            self.cond.notify()
        if self.thread is not None:
            self.thread.join()

    def finish(self, tokens: Sequence[Sequence[int]]) -> list[np.ndarray]:
        self.end(tokens)
        if self.thread is not None:
            self.thread.join()
        else:
            self._run(self.pending)
            self.pending = []
        if self.error is not None:
            raise self.error
        if self.stream is not None:
            torch.cuda.current_stream().wait_stream(self.stream)
        return [o if o is not None else np.zeros(0, np.float32) for o in self.out]


class _Clock:
    """Adds stage times to `timings` (synchronising the device), or does nothing when timings is None."""

    def __init__(self, timings: dict[str, float] | None, device: str):
        self.timings, self.device = timings, device
        self.t = self._now() if timings is not None else 0.0

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is not None:
            now = self._now()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now
