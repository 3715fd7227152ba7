"""GLM-TTS's Llama, as batchtts runs it: fused weights, a slot KV cache, logits over speech tokens only.

Built from a loaded Hugging Face `LlamaForCausalLM` (the same safetensors, the same numbers): q/k/v and
gate/up are concatenated into one matrix each, and the Hugging Face modules' weights are turned into
views of the fused ones, so the reference model keeps working and nothing is held twice. The output
projection is the rows of the (tied) embedding that are speech tokens plus EOA: a step reads 32,769
rows of it, not 98,304.

The KV cache has one slot per concurrent sentence, allocated once for a run; each slot holds its
sentence from position 0 (no left padding) and `lens[slot]` says how far it is filled, so a row's
positions and attention are the same in any batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama's RMSNorm: torch's own kernel on CUDA (fewer launches a step), elsewhere Hugging Face's order of
    operations (fp32 inside), so a CPU run matches the reference bit for bit."""
    if x.is_cuda:
        return F.rms_norm(x, weight.shape, weight, eps)
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """RoPE as Hugging Face's x*cos + rotate_half(x)*sin, with the minus sign moved into the sine table
    (the same products bit for bit) so the rotation is one roll instead of a negation and a concatenation."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


class FusedLlama:
    """Weights and forward passes (prefill into slots, one decode step over slots) of a Llama LLM."""

    def __init__(self, hf_model, out_ids: torch.Tensor):
        cfg = hf_model.config
        m = hf_model.model
        self.device, self.dtype = hf_model.device, hf_model.dtype
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.layers_n = cfg.num_hidden_layers
        self.eps = cfg.rms_norm_eps
        self.embed = m.embed_tokens.weight
        self.layers = []
        with torch.no_grad():
            for layer in m.layers:
                a, mlp = layer.self_attn, layer.mlp
                wqkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                w13 = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
                q, k = a.q_proj.weight.shape[0], a.k_proj.weight.shape[0]
                a.q_proj.weight.data, a.k_proj.weight.data, a.v_proj.weight.data = wqkv.split(
                    [q, k, wqkv.shape[0] - q - k]
                )
                inter = mlp.gate_proj.weight.shape[0]
                mlp.gate_proj.weight.data, mlp.up_proj.weight.data = w13.split([inter, inter])
                self.layers.append(
                    (
                        layer.input_layernorm.weight,
                        wqkv,
                        a.o_proj.weight,
                        layer.post_attention_layernorm.weight,
                        w13,
                        mlp.down_proj.weight,
                    )
                )
            self.norm = m.norm.weight
            self.out = hf_model.lm_head.weight[out_ids.to(self.device)].contiguous()
            rope = m.rotary_emb
            positions = torch.arange(cfg.max_position_embeddings, device=self.device)
            cos, sin = rope(torch.zeros((), dtype=self.dtype, device=self.device), positions[None])
            half = self.head_dim // 2
            self.cos = cos[0]  # (max positions, head_dim), Hugging Face's own values
            self.sin = torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)  # sign of rotate_half folded in
        self.scale = self.head_dim**-0.5
        self.max_positions = cfg.max_position_embeddings

    def weight_bytes_per_step(self) -> int:
        """What one decode step reads: every layer, the final norm and the restricted output projection."""
        tensors = [t for layer in self.layers for t in layer] + [self.norm, self.out]
        return sum(t.numel() * t.element_size() for t in tensors)

    def kv_cache(self, slots: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.layers_n, slots, self.kv_heads, length, self.head_dim)
        return (
            torch.zeros(shape, dtype=self.dtype, device=self.device),
            torch.zeros(shape, dtype=self.dtype, device=self.device),
        )

    def _mlp(self, h: torch.Tensor, ln2, w13, w2) -> torch.Tensor:
        gate, up = F.linear(_rms_norm(h, ln2, self.eps), w13).chunk(2, dim=-1)
        return h + F.linear(F.silu(gate) * up, w2)

    def _qkv(self, x: torch.Tensor, wqkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """q (b, heads, t, d), k and v (b, kv_heads, t, d) of x (b, t, hidden); cos/sin (b, 1, t, d) of its
        positions. RoPE turns q and k in one pass (the same element-wise operations as one at a time)."""
        b, t = x.shape[:2]
        qk_heads = self.heads + self.kv_heads
        qkv = F.linear(x, wqkv).view(b, t, qk_heads + self.kv_heads, self.head_dim).transpose(1, 2)
        qk = _rotate(qkv[:, :qk_heads], cos, sin)
        return qk[:, : self.heads], qk[:, self.heads :], qkv[:, qk_heads:]

    def prefill(
        self, ids: torch.Tensor, lens: torch.Tensor, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """Right-padded prompts ids (rows, width) of lengths lens into cache slots; logits of each row's last
        prompt position over the output ids. Columns past a row's length get padding's K/V: masked, and
        overwritten as the row decodes."""
        rows, width = ids.shape
        pos = torch.arange(width, device=ids.device).expand(rows, width)
        valid = pos < lens[:, None]
        mask = (pos[:, None, :] <= pos[:, :, None]) & valid[:, None, :]  # (rows, query, key): causal, unpadded
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]
        h = F.embedding(ids, self.embed)
        for i, (ln1, wqkv, wo, ln2, w13, w2) in enumerate(self.layers):
            q, k, v = self._qkv(_rms_norm(h, ln1, self.eps), wqkv, cos, sin)
            keys[i, slots, :, :width] = k
            values[i, slots, :, :width] = v
            groups = self.heads // self.kv_heads  # K/V repeated per query head: the masked kernels take no GQA
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=self.scale)
            h = h + F.linear(o.transpose(1, 2).reshape(rows, width, -1), wo)
            h = self._mlp(h, ln2, w13, w2)
        last = h[torch.arange(rows, device=ids.device), lens - 1]
        return F.linear(_rms_norm(last, self.norm, self.eps), self.out).float()

    def step(
        self, ids: torch.Tensor, lens: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, span: int
    ) -> torch.Tensor:
        """One token per slot: ids (n,) enter at position lens (n,) of slots 0..n-1, whose K/V are written
        there; attention reads the first `span` columns (>= every live row's length + 1). Logits (n, out)."""
        n = ids.shape[0]
        rows = torch.arange(n, device=ids.device)
        col = lens.clamp(max=keys.shape[3] - 1)
        visible = torch.arange(span, device=ids.device)[None, :] <= lens[:, None]  # (n, span)
        bias = torch.zeros(visible.shape, dtype=self.dtype, device=ids.device).masked_fill_(~visible, float("-inf"))
        bias = bias[:, None, None]  # built once per step, shared by every layer
        cos, sin = self.cos[lens][:, None, None], self.sin[lens][:, None, None]
        groups = self.heads // self.kv_heads
        h = F.embedding(ids[:, None], self.embed)
        for i, (ln1, wqkv, wo, ln2, w13, w2) in enumerate(self.layers):
            q, k, v = self._qkv(_rms_norm(h, ln1, self.eps), wqkv, cos, sin)
            keys[i, rows, :, col] = k[:, :, 0]
            values[i, rows, :, col] = v[:, :, 0]
            # Grouped-query attention: a KV head's query heads act as a query length of `groups`.
            q = q.reshape(n, self.kv_heads, groups, self.head_dim)
            o = F.scaled_dot_product_attention(
                q, keys[i, :n, :, :span], values[i, :n, :, :span], attn_mask=bias, scale=self.scale
            )
            h = h + F.linear(o.reshape(n, 1, self.heads * self.head_dim), wo)
            h = self._mlp(h, ln2, w13, w2)
        return F.linear(_rms_norm(h[:, 0], self.norm, self.eps), self.out).float()
