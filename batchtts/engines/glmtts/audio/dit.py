"""GLM-TTS's flow-matching DiT, batched: rows of different lengths padded to the longest, under masks.

Written from a reading of the official `flow/dit.py` and `flow/modules.py` (none of it copied). The
module and parameter names are the official ones, so the published `flow.pt` loads unchanged. The
official model runs one sentence at a time with no padding; every operation that mixes time steps is
masked here so that a padded row computes what it would alone: attention ignores padded keys, every
convolution sees zeros past a row's end (what its own zero padding would add), and the ConvNeXt GRN's
norm over time counts only the row's frames.

Sizes come from the state dict's shapes (the official code fixes them in Python: width 768, depth 18,
12 heads of 64 for the published model), so a tiny random checkpoint loads through the same code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

HEAD_DIM = 64  # the official DiT's dim_head
TEXT_MAX_POS = 4096  # the text embedding's precomputed positions (later ones reuse the last)


def _keep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded frames of (B, T, C) x; mask (B, T) is True on real frames."""
    return x.masked_fill(~mask[..., None], 0.0)


def _conv_bt(conv: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A time convolution over (B, T, C) that sees zeros past each row's end."""
    return conv(_keep(x, mask).transpose(1, 2)).transpose(1, 2)


def sinusoidal(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=t.device).float() * -(math.log(10000) / (half - 1)))
    arg = scale * t[:, None] * freq[None]
    return torch.cat((arg.sin(), arg.cos()), dim=-1)


def text_positions(dim: int, length: int, theta: float = 10000.0) -> torch.Tensor:
    """The additive cos|sin table of the text embedding (computed, never stored in the checkpoint)."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length).float(), freqs)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoidal(t, self.freq_dim).to(self.time_mlp[0].weight.dtype))


class GRN(nn.Module):
    """ConvNeXt-V2 global response normalisation; the L2 norm over time counts real frames only."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(_keep(x, mask), p=2, dim=1, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, inner)
        self.grn = GRN(inner)
        self.pwconv2 = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm(_conv_bt(self.dwconv, x, mask))
        h = self.grn(F.gelu(self.pwconv1(h)), mask)
        return x + self.pwconv2(h)


class TextEmbedding(nn.Module):
    """Speech tokens (already stretched to the mel length), plus positions, through ConvNeXt blocks."""

    def __init__(self, vocab: int, dim: int, blocks: int, inner: int):
        super().__init__()
        self.text_embed = nn.Embedding(vocab, dim)
        self.text_blocks = nn.ModuleList([ConvNeXtV2Block(dim, inner) for _ in range(blocks)])
        self.register_buffer("positions", text_positions(dim, TEXT_MAX_POS), persistent=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(tokens.shape[1], device=tokens.device).clamp(max=TEXT_MAX_POS - 1)
        h = self.text_embed(tokens) + self.positions[pos].to(self.text_embed.weight.dtype)
        for block in self.text_blocks:
            h = block(h, mask)
        return h


class ConvPositionEmbedding(nn.Module):
    def __init__(self, dim: int, kernel: int = 31, groups: int = 16):
        super().__init__()
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.mish(_conv_bt(self.conv1d[0], x, mask))
        return F.mish(_conv_bt(self.conv1d[2], h, mask))


class EmbeddingConcater(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.conv_pos_embed = ConvPositionEmbedding(dim)

    def forward(self, x, cond, text, mask):
        h = self.proj(torch.cat((x, cond, text), dim=-1))
        return self.conv_pos_embed(h, mask) + h


class RotaryEmbedding(nn.Module):
    """x-transformers' rotary table (interleaved pairs); `inv_freq` is a stored buffer of the checkpoint."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(length, device=self.inv_freq.device).type_as(self.inv_freq)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq).repeat_interleave(2, dim=-1)
        return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate, in place, the first cos.shape[-1] features of (B, T, D) x in interleaved pairs, as the official
    model does before splitting heads (so only the first head's features turn)."""
    n = cos.shape[-1]
    rot = x[..., :n].float()
    pairs = rot.unflatten(-1, (-1, 2))
    half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    x[..., :n] = rot * cos + half * sin  # in fp32, as x-transformers does
    return x


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        inner = heads * HEAD_DIM
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x, mask, rope, key_mask):
        b, t, _ = x.shape
        q = apply_rotary(self.to_q(x), *rope)
        k = apply_rotary(self.to_k(x), *rope)
        v = self.to_v(x)
        q, k, v = (a.view(b, t, self.heads, HEAD_DIM).transpose(1, 2) for a in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        out = self.to_out[0](out.transpose(1, 2).reshape(b, t, -1))
        return _keep(out, mask)


class AdaLayerNormZero(nn.Module):
    def __init__(self, dim: int, extra: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim + extra, dim * chunks)

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.chunk(self.linear(F.silu(emb)), self.chunks, dim=1)


class FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")), nn.Dropout(0.0), nn.Linear(inner, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_inner: int, extra: int):
        super().__init__()
        self.attn_norm = AdaLayerNormZero(dim, extra, 6)
        self.attn = Attention(dim, heads)
        self.ff = FeedForward(dim, ff_inner)

    def forward(self, x, emb, mask, rope, key_mask):
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.attn_norm(emb)
        h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale_a[:, None]) + shift_a[:, None]
        x = x + gate_a[:, None] * self.attn(h, mask, rope, key_mask)
        h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale_f[:, None]) + shift_f[:, None]
        return x + gate_f[:, None] * self.ff(h)


class FinalNorm(nn.Module):
    def __init__(self, dim: int, extra: int):
        super().__init__()
        self.linear = nn.Linear(dim + extra, dim * 2)

    def forward(self, x, emb):
        scale, shift = torch.chunk(self.linear(F.silu(emb)), 2, dim=1)
        return F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale)[:, None] + shift[:, None]


def dit_sizes(state: dict[str, torch.Tensor], prefix: str = "estimator.") -> dict[str, int]:
    """The DiT's dimensions read from a state dict's shapes (the official code fixes them in Python)."""
    p = prefix
    depth = 1 + max(int(k[len(p) :].split(".")[1]) for k in state if k.startswith(p + "transformer_blocks."))
    blocks = [k for k in state if k.startswith(p + "text_emb_layer.text_blocks.") and k.endswith(".dwconv.weight")]
    dim = state[p + "proj_out.weight"].shape[1]
    return {
        "dim": dim,
        "depth": depth,
        "heads": state[p + "transformer_blocks.0.attn.to_q.weight"].shape[0] // HEAD_DIM,
        "ff_inner": state[p + "transformer_blocks.0.ff.ff.0.0.weight"].shape[0],
        "extra": state[p + "norm_out.linear.weight"].shape[1] - dim,
        "mel_dim": state[p + "proj_out.weight"].shape[0],
        "vocab": state[p + "text_emb_layer.text_embed.weight"].shape[0],
        "text_dim": state[p + "text_emb_layer.text_embed.weight"].shape[1],
        "text_blocks": len(blocks),
        "text_inner": state[p + "text_emb_layer.text_blocks.0.pwconv1.weight"].shape[0] if blocks else 0,
        "cond_dim": state[p + "emb_concator.proj.weight"].shape[1]
        - state[p + "proj_out.weight"].shape[0]
        - state[p + "text_emb_layer.text_embed.weight"].shape[1],
    }


class DiT(nn.Module):
    def __init__(self, dim, depth, heads, ff_inner, extra, mel_dim, vocab, text_dim, text_blocks, text_inner, cond_dim):
        super().__init__()
        self.time_embed = TimestepEmbedding(dim)
        self.text_emb_layer = TextEmbedding(vocab, text_dim, text_blocks, text_inner)
        self.emb_concator = EmbeddingConcater(mel_dim + text_dim + cond_dim, dim)
        self.rotary_embed = RotaryEmbedding(HEAD_DIM)
        self.transformer_blocks = nn.ModuleList([DiTBlock(dim, heads, ff_inner, extra) for _ in range(depth)])
        self.norm_out = FinalNorm(dim, extra)
        self.proj_out = nn.Linear(dim, mel_dim)

    def forward(self, x, cond, text, t, mask, speaker):
        """x, cond (B, T, mel); text (B, T, text_dim) from `text_emb_layer`; t a 0-d time; mask (B, T) real
        frames; speaker (B, extra) the normalised embedding (zeros for the unconditional pass)."""
        emb = self.time_embed(t.reshape(1)).expand(x.shape[0], -1)
        emb = torch.cat([emb, speaker.to(emb.dtype)], dim=-1)
        h = self.emb_concator(x, cond, text, mask)
        rope = self.rotary_embed(x.shape[1])
        key_mask = mask[:, None, None, :]
        for block in self.transformer_blocks:
            h = block(h, emb, mask, rope, key_mask)
        return self.proj_out(self.norm_out(h, emb))
