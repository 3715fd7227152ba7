"""Whisper through transformers (any Hugging Face Whisper checkpoint), batched, on the CPU or beside the
engine on the GPU. The checkpoint is fetched once with `batchtts download --repo openai/whisper-large-v3-turbo`
(the same path as GLM-TTS: HF_ENDPOINT mirror, pinned revision, offline reuse) into
models/whisper-large-v3-turbo, or the folder in BATCHTTS_WHISPER_DIR."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soxr

from batchtts import config
from batchtts.engines.download import ModelLock
from batchtts.verify.asr.base import AsrBackend

RATE = 16000  # Whisper's feature extractor rate
MAX_BATCH = 16  # clips per generate() call
LANGUAGE = {"en": "english", "zh": "chinese"}


def model_dir() -> Path:
    return config.whisper_model_dir()


def _batch_bytes(d_model: int, decoder_layers: int, width: int, batch: int) -> int:
    """Activations of `batch` 30 s windows: the encoder's hidden states (d_model x 1500 frames) eight times
    over, the decoder's self-attention KV cache for 448 tokens and its cross-attention KV over 1500 frames;
    an upper bound (bench/bench_asr.py compares it with the measured peak)."""
    encoder = 1500 * d_model * width * 8
    kv = 2 * decoder_layers * (448 + 1500) * d_model * width
    return batch * (encoder + kv)


class WhisperBackend(AsrBackend):
    name = "whisper"
    languages = ("en", "zh")

    def __init__(self, folder: Path, device: str = "cpu"):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.device = device
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        self.processor = WhisperProcessor.from_pretrained(folder)
        self.model = WhisperForConditionalGeneration.from_pretrained(folder, dtype=self.dtype).to(device).eval()
        self.batches = 0  # generate() calls, for tests and the benchmark

    @classmethod
    def available(cls, language: str, device: str) -> str | None:
        if language not in cls.languages:
            return f"whisper does not transcribe '{language}'"
        folder = model_dir()
        lock = ModelLock.read(folder)
        if lock is None or lock.missing(folder):
            return (
                f"no downloaded Whisper checkpoint in {folder} (batchtts download --repo "
                f"{config.DEFAULT_WHISPER_REPO}, or set {config.WHISPER_MODEL_DIR})"
            )
        return None

    @classmethod
    def load(cls, device: str = "cpu") -> WhisperBackend:
        return cls(model_dir(), device)

    def weights_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def batch_bytes(self, batch: int | None = None) -> int:
        """Activations of a batch (default MAX_BATCH) of 30 s windows; see `_batch_bytes`."""
        cfg = self.model.config
        width = self.dtype.itemsize if hasattr(self.dtype, "itemsize") else 2
        return _batch_bytes(cfg.d_model, cfg.decoder_layers, width, batch or MAX_BATCH)

    def memory_bytes(self) -> int:
        return self.weights_bytes() + self.batch_bytes() if self.device == "cuda" else 0

    def batch_reserve_bytes(self) -> int:
        return self.batch_bytes() if self.device == "cuda" else 0

    @classmethod
    def planned_bytes(cls, device: str) -> int:
        """fp16 weights (parameter count from the safetensors headers) plus `batch_bytes` from config.json."""
        folder = model_dir()
        if device != "cuda" or cls.available("en", device) is not None:
            return 0
        params = 0
        for path in folder.glob("*.safetensors"):
            with open(path, "rb") as fh:
                header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
            params += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return 2 * params + _batch_bytes(cfg["d_model"], cfg["decoder_layers"], 2, MAX_BATCH)

    def transcribe(self, audio: list[np.ndarray], sample_rate: list[int], language: str) -> list[str]:
        import torch

        out: list[str] = []
        for start in range(0, len(audio), MAX_BATCH):
            clips = [
                soxr.resample(np.asarray(a, np.float32), r, RATE)
                for a, r in zip(audio[start : start + MAX_BATCH], sample_rate[start : start + MAX_BATCH], strict=True)
            ]
            inputs = self.processor(clips, sampling_rate=RATE, return_tensors="pt", return_attention_mask=True)
            with torch.inference_mode():
                ids = self.model.generate(
                    inputs.input_features.to(self.device, self.dtype),
                    attention_mask=inputs.attention_mask.to(self.device),
                    language=LANGUAGE.get(language, "english"),
                    task="transcribe",
                    max_new_tokens=min(440, self.model.config.max_target_positions - 8),
                )
            self.batches += 1
            out += [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return out

    def close(self) -> None:
        self.model = None
