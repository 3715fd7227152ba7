"""GLM-TTS's speech tokenizer (Whisper-VQ), in batchtts: 25 speech tokens a second from 16 kHz audio.

It is the first half of a Whisper encoder (transformers' own encoder layers) with GLM-TTS's two additions:
after layer `pooling_position` the frames are average-pooled (50 -> 25 a second), and after layer
`quantize_position` each frame is replaced by the index of its nearest codebook vector. Attention is
block-causal (`quantize_causal_block_size` frames). It loads the official `speech_tokenizer/` folder
unchanged (config.json, preprocessor_config.json, model*.safetensors with `model.encoder.*` names), runs on
any device, and needs no GLM-TTS checkout: the official class imports a transformers module that
transformers 5 no longer has.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from batchtts.errors import EnvironmentProblem

RATE = 16000
SEGMENT_SECONDS = 30  # the official tokenizer cuts longer audio into 30 s pieces and joins their tokens
PREFIX = "model.encoder."


class WhisperVQEncoder(nn.Module):
    """Parameter names follow the official checkpoint, so its state dict loads as it is."""

    def __init__(self, config: dict):
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

        super().__init__()
        self.config = config
        wc = WhisperConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
        wc._attn_implementation = "eager"  # the official one; the mask is additive and block-causal
        dim, self.layers_used = config["d_model"], config["quantize_position"]
        self.pool = config.get("pooling_kernel_size") or 1
        if config.get("pooling_type", "max") not in ("avg", "max"):
            raise EnvironmentProblem(f"speech tokenizer: unknown pooling_type {config['pooling_type']!r}")
        if config.get("encoder_causal_convolution") or config.get("quantize_causal_encoder"):
            raise EnvironmentProblem("speech tokenizer: causal convolution/encoder variants are not supported")
        self.conv1 = nn.Conv1d(config["num_mel_bins"], dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config["max_source_positions"], dim)
        self.layers = nn.ModuleList(WhisperEncoderLayer(wc) for _ in range(self.layers_used))
        self.codebook = nn.Embedding(config["quantize_vocab_size"], dim)

    def _mask(self, valid: torch.Tensor, block: int | None) -> torch.Tensor:
        """Additive (B, 1, T, T) mask: padding hidden; with `block`, a frame sees its own block and the past."""
        n = valid.shape[1]
        allowed = valid[:, None, :].expand(-1, n, -1)
        if block:
            pos = torch.arange(n, device=valid.device)
            causal = (pos[None, :] <= pos[:, None]) | (pos[None, :] // block == pos[:, None] // block)
            allowed = allowed & causal[None]
        zero = torch.zeros((), dtype=self.conv1.weight.dtype, device=valid.device)
        neg = torch.tensor(torch.finfo(zero.dtype).min, dtype=zero.dtype, device=valid.device)
        return torch.where(allowed, zero, neg)[:, None]

    @torch.inference_mode()
    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, mels, frames), frame_mask (B, frames) -> token ids (B, T) and their validity (B, T)."""
        cfg = self.config
        stride = self.conv1.stride[0] * self.conv2.stride[0]
        valid = frame_mask[:, ::stride].bool()
        block = cfg.get("quantize_causal_block_size")
        h = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(features)))).permute(0, 2, 1)
        h = h + self.embed_positions.weight[: h.shape[1]]
        mask = self._mask(valid, block)
        ids = None
        for i, layer in enumerate(self.layers, start=1):
            h = layer(h, mask)
            if i == cfg.get("pooling_position") and self.pool > 1:
                x = h.permute(0, 2, 1)
                if x.shape[-1] % self.pool:
                    x = nn.functional.pad(x, (0, self.pool - x.shape[-1] % self.pool))
                pool = nn.functional.avg_pool1d if cfg.get("pooling_type") == "avg" else nn.functional.max_pool1d
                h = pool(x, self.pool).permute(0, 2, 1)
                valid = valid[:, :: self.pool]
                mask = self._mask(valid, block // self.pool if block else None)
            if i == self.layers_used:
                ids = self._nearest(h)
        return ids, valid

    def _nearest(self, h: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector (squared Euclidean distance, first on ties)."""
        code = self.codebook.weight
        flat = h.reshape(-1, h.shape[-1])
        dist = torch.addmm((code**2).sum(1) + (flat**2).sum(1, keepdim=True), flat, code.t(), alpha=-2.0, beta=1.0)
        return dist.argmin(dim=1).reshape(h.shape[:2])


def read_state_dict(folder: Path, layers: int) -> dict[str, torch.Tensor]:
    """The encoder's tensors from the official safetensors, under our (= the official) names."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise EnvironmentProblem(f"speech tokenizer weights missing: no model*.safetensors in {folder}")
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                if not key.startswith(PREFIX):
                    continue
                name = key[len(PREFIX) :]
                if name.startswith("layers.") and int(name.split(".")[1]) >= layers:
                    continue
                # after the last layer used, or training state (the EMA codebook statistics): not needed
                if name.startswith(("layer_norm", "embed_positions2", "ema_")):
                    continue
                out[name] = f.get_tensor(key)
    return out


class SpeechTokenizer:
    """`SpeechTokenizer.load(folder, device)(audio16k) -> list[int]` (speech token ids, 25 a second)."""

    def __init__(self, model: WhisperVQEncoder, features, device: str):
        self.model, self.features, self.device = model, features, device

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> SpeechTokenizer:
        from transformers import WhisperFeatureExtractor

        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except OSError:
            raise EnvironmentProblem(
                f"speech tokenizer missing: {folder / 'config.json'}; run `batchtts download`"
            ) from None
        model = WhisperVQEncoder(config)
        state = read_state_dict(folder, config["quantize_position"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EnvironmentProblem(
                f"speech tokenizer in {folder} does not match its config: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        model = model.float().to(device).eval()
        return cls(model, WhisperFeatureExtractor.from_pretrained(str(folder)), device)

    def __call__(self, audio16k: np.ndarray) -> list[int]:
        return self.batch([audio16k])[0]

    def batch(self, audios: list[np.ndarray]) -> list[list[int]]:
        """Token ids per clip; clips over 30 s are cut into 30 s pieces, as the official tokenizer does."""
        pieces, owner = [], []
        for i, audio in enumerate(audios):
            audio = np.asarray(audio, np.float32).reshape(-1)
            for start in range(0, max(1, len(audio)), SEGMENT_SECONDS * RATE):
                pieces.append(audio[start : start + SEGMENT_SECONDS * RATE])
                owner.append(i)
        cfg = self.model.config
        stride = self.model.conv1.stride[0] * self.model.conv2.stride[0] * (cfg.get("pooling_kernel_size") or 1)
        feats = self.features(
            pieces,
            sampling_rate=RATE,
            return_attention_mask=True,
            return_tensors="pt",
            padding="longest",
            pad_to_multiple_of=stride * self.features.hop_length,
            device=self.device,
        )
        ids, valid = self.model(
            feats["input_features"].to(self.device, torch.float32), feats["attention_mask"].to(self.device)
        )
        out: list[list[int]] = [[] for _ in audios]
        for row, i in enumerate(owner):
            out[i].extend(ids[row][valid[row]].tolist())
        return out
