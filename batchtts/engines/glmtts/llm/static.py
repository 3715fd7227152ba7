"""GLM-TTS decode steps over a preallocated KV cache, so a step can be compiled or replayed as a CUDA graph.

The dynamic path (`glmtts_llm.decode_batch`) grows its cache by a column every step and drops
finished rows, so no two steps have the same shapes and each step pays a kernel launch per
operation: at the batch sizes of a decode, those launches are a large part of a step on a GPU.

Here a batch's cache is allocated once (rows x prompt width plus the longest allowed decode: the
planner's worst case, no more). Every step writes one column in place and attends, under a mask,
over the columns filled so far rounded up to `quantum`, so a step's shape changes only every
`quantum` steps and a step reads little more of the cache than it needs. Rows that finish stay
(masked, their output ignored) until at most half remain; then the live rows move to the front and
the step runs on the smaller shape. Prefill stays on the Hugging Face model; the decode step reuses
its modules (projections, norms, MLP, rotary embedding), with grouped-query attention through
`scaled_dot_product_attention`.

Modes: `static` (eager), `compile` (`torch.compile` of the step), `graphs` (the step captured as a
CUDA graph per shape and replayed). Every mode decodes the same tokens as `decode_batch`: the same
prompts, positions, sampling rules and counter-based random numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from batchtts.engines.glmtts.llm.reference import Sampling, SpecialIds, choose, decode_batch, left_pad, output_ids

MODES = ("dynamic", "static", "compile", "graphs")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Decodes batches of GLM-TTS prompts; `decode` has `decode_batch`'s signature and results."""

    def __init__(self, model, mode: str = "static", quantum: int = 128):
        if mode not in MODES:
            raise ValueError(f"decode mode {mode!r}: choose one of {', '.join(MODES)}")
        if mode == "graphs" and model.device.type != "cuda":
            raise ValueError("decode mode 'graphs' needs a CUDA device")
        self.model, self.mode, self.quantum = model, mode, quantum
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self._step_fn = self._step
        if mode == "compile":
            self._step_fn = torch.compile(self._step, dynamic=None)
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool = None

    def _step(self, ids, pos, col, mask, keys, values) -> torch.Tensor:
        """One token per row: ids, pos (rows, 1); col (1,) the cache column written; mask (rows, length)."""
        m = self.model.model
        h = m.embed_tokens(ids)
        cos, sin = m.rotary_emb(h, pos)
        cos, sin = cos[:, None], sin[:, None]
        rows, groups = ids.shape[0], self.heads // self.kv_heads
        bias = torch.zeros(mask.shape, dtype=h.dtype, device=h.device).masked_fill_(~mask, float("-inf"))
        bias = bias[:, None, None, :]
        for layer, kbuf, vbuf in zip(m.layers, keys, values, strict=True):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(rows, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            kbuf.index_copy_(2, col, k)
            vbuf.index_copy_(2, col, v)
            # Grouped-query attention: each KV head's query heads act as a query length of `groups`.
            q = q.reshape(rows, self.kv_heads, groups, self.head_dim)
            o = F.scaled_dot_product_attention(q, kbuf, vbuf, attn_mask=bias, scale=attn.scaling)
            h = h + attn.o_proj(o.reshape(rows, 1, self.heads * self.head_dim))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.model.lm_head(m.norm(h))[:, -1].float()

    def _run(self, n: int, span: int, state: dict) -> torch.Tensor:
        args = (
            state["ids"][:n],
            state["pos"][:n],
            state["col"],
            state["mask"][:n, :span],
            [k[:n, :, :span] for k in state["keys"]],
            [v[:n, :, :span] for v in state["values"]],
        )
        if self.mode != "graphs":
            return self._step_fn(*args)
        key = (n, span)
        if key not in self._graphs:  # the buffers are fixed for the batch, so a graph per shape is replayable
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._step(*args)  # warm-up; it rewrites the current column with the same values
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = self._step(*args)
            self._pool = graph.pool()
            self._graphs[key] = (graph, out)
        graph, out = self._graphs[key]
        graph.replay()
        return out

    @torch.inference_mode()
    def decode(
        self,
        prompts: list[list[int]],
        text_lens: list[int],
        sp: SpecialIds,
        sampling: list[Sampling],
        seeds: list[int],
        min_ratio: float = 2.0,
        max_ratio: float = 20.0,
    ) -> tuple[list[list[int]], list[bool]]:
        model = self.model
        if self.mode == "dynamic":
            return decode_batch(model, prompts, text_lens, sp, sampling, seeds, min_ratio, max_ratio)
        device = model.device
        rows = len(prompts)
        ids, mask, positions = left_pad(prompts, sp.pad, device)
        width = ids.shape[1]
        out_ids = output_ids(sp).to(device)
        min_len = [int(n * min_ratio) for n in text_lens]
        max_len = [int(n * max_ratio) for n in text_lens]
        length = width + max(max_len)

        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        logits = out.logits[:, -1, :]
        shape = (rows, self.kv_heads, length, self.head_dim)
        state = {
            "keys": [],
            "values": [],
            "mask": torch.zeros((rows, length), dtype=torch.bool, device=device),
            "ids": torch.full((rows, 1), sp.pad, dtype=torch.long, device=device),
            "pos": (positions[:, -1:] + 1).clone(),
            "col": torch.tensor([width], device=device),
        }
        col = width
        for layer in out.cache.layers:  # layer by layer, so the prompt's cache is never held twice
            for name, part in (("keys", layer.keys), ("values", layer.values)):
                buf = torch.zeros(shape, dtype=model.dtype, device=device)
                buf[:, :, :width] = part
                state[name].append(buf)
            layer.keys = layer.values = None
        state["mask"][:, :width] = mask.bool()
        del out
        self._graphs.clear()
        self._pool = None  # the cleared graphs were the pool's last users: a stale handle fails the next capture

        slots: list[int | None] = list(range(rows))  # slot -> request row; None once the row is done
        tokens: list[list[int]] = [[] for _ in range(rows)]
        ended = [False] * rows
        while True:
            live = [s for s, row in enumerate(slots) if row is not None]
            picks = choose(logits[live], [slots[s] for s in live], tokens, min_len, sampling, seeds, sp, out_ids)
            nxt = [sp.pad] * len(slots)
            for s, t in zip(live, picks, strict=True):
                row = slots[s]
                if t == sp.eoa:
                    ended[row], slots[s] = True, None
                    continue
                tokens[row].append(t - sp.ats)
                if len(tokens[row]) < max_len[row]:
                    nxt[s] = t
                else:
                    slots[s] = None
            live = [s for s, row in enumerate(slots) if row is not None]
            if not live:
                break
            n = len(slots)
            if len(live) <= n // 2:  # move the live rows to the front and run on the smaller shape
                index = torch.tensor(live, device=device)
                for buf in (*state["keys"], *state["values"]):
                    buf[: len(live)] = buf[index]
                for name in ("mask", "pos"):
                    state[name][: len(live)] = state[name][index]
                slots, nxt, n = [slots[s] for s in live], [nxt[s] for s in live], len(live)
            state["ids"][:n, 0] = torch.tensor(nxt, device=device)
            state["mask"][:n, col] = True
            logits = self._run(n, min(length, (col // self.quantum + 1) * self.quantum), state)
            state["pos"][:n] += 1
            state["col"] += 1
            col += 1
        self._graphs.clear()
        self._pool = None
        return tokens, [not e for e in ended]
