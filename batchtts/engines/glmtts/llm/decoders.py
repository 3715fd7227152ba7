"""The decoder the GLM-TTS engine holds, chosen by `GLMTTS_DECODE`, sized by the device's KV budget.

Modes: `auto` (the default: `graphs` on CUDA, `slots` elsewhere), `slots` (decode.py's continuous batching,
eager steps), `graphs` (the same, steps replayed as CUDA graphs), and the older paths kept as references
and for the benchmark: `dynamic` (Hugging Face's forward, llm.py), `static` and `compile` (static.py).
Every mode decodes the same tokens in fp32 (tests/test_decode.py, tests/test_glmtts.py).
"""

from __future__ import annotations

from batchtts.engines.glmtts.llm.capacity import MAX_SLOTS, SLOT_TOKENS, slots_for_budget
from batchtts.engines.glmtts.llm.llama import FusedLlama
from batchtts.engines.glmtts.llm.reference import Sampling, SpecialIds, output_ids
from batchtts.engines.glmtts.llm.slot_decoder import RowDone, SlotDecoder
from batchtts.errors import EnvironmentProblem

MODES = ("auto", "slots", "graphs", "dynamic", "static", "compile")
PREFILL_TOKENS = 4096  # refill prompts go through the model in groups of at most this many tokens
CUDA_MARGIN = 0.9  # of free memory after the activation reserve and the graphs' pool
GRAPH_POOL_BYTES = 512 << 20  # the captured steps' working memory (sampling over 64 x 32,769 logits and so on)
CPU_SHARE = 0.25  # of available RAM for the KV cache on a CPU


class EngineDecoder:
    """What the engine calls: `decode(prompts, text_lens, sp, samplings, seeds, min_ratio, max_ratio,
    on_row_done=None) -> (tokens, truncated)`. The slot cache is allocated at the first decode, from the
    memory free then (after the runner planned with the same figure), and kept for the run."""

    def __init__(self, llm, sp: SpecialIds, mode: str = "auto", slots: int | None = None):
        if mode not in MODES:
            raise ValueError(f"decode mode {mode!r}: choose one of {', '.join(MODES)}")
        cuda = llm.device.type == "cuda"
        if mode == "auto":
            mode = "graphs" if cuda else "slots"
        if mode == "graphs" and not cuda:
            raise ValueError("decode mode 'graphs' needs a CUDA device")
        self.llm, self.sp, self.mode, self._slots = llm, sp, mode, slots
        self.slot_decoder: SlotDecoder | None = None
        self.fused = FusedLlama(llm, output_ids(sp)) if mode in ("slots", "graphs") else None
        if self.fused is None:
            from batchtts.engines.glmtts.llm.static import StaticDecoder

            self.reference = StaticDecoder(llm, mode)

    def decode(
        self,
        prompts: list[list[int]],
        text_lens: list[int],
        sp: SpecialIds,
        sampling: list[Sampling],
        seeds: list[int],
        min_ratio: float = 2.0,
        max_ratio: float = 20.0,
        on_row_done: RowDone | None = None,
    ) -> tuple[list[list[int]], list[bool]]:
        if self.fused is None:
            tokens, cut = self.reference.decode(prompts, text_lens, sp, sampling, seeds, min_ratio, max_ratio)
            for i, (t, c) in enumerate(zip(tokens, cut, strict=True)):
                if on_row_done is not None:
                    on_row_done(i, t, c)
            return tokens, cut
        return self._slot_decoder().decode(
            prompts, text_lens, sp, sampling, seeds, min_ratio, max_ratio, on_row_done=on_row_done
        )

    def _slot_decoder(self) -> SlotDecoder:
        if self.slot_decoder is None:
            import torch

            fused = self.fused
            length = min(SLOT_TOKENS, fused.max_positions)
            per_token = 2 * fused.layers_n * fused.kv_heads * fused.head_dim * fused.dtype.itemsize
            if self._slots is not None:
                slots = self._slots
            elif fused.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info()
                budget = int((free - self.activation_reserve() - GRAPH_POOL_BYTES) * CUDA_MARGIN)
                slots = slots_for_budget(budget, per_token, length, MAX_SLOTS)
            else:
                from batchtts.engines.base import available_ram

                slots = slots_for_budget(int(available_ram() * CPU_SHARE), per_token, length, MAX_SLOTS)
            if slots < 1:
                raise EnvironmentProblem(f"the device has no room for one GLM-TTS decode slot of {length} tokens")
            self.slot_decoder = SlotDecoder(
                fused, self.sp, slots, length, graphs=self.mode == "graphs", prefill_tokens=PREFILL_TOKENS
            )
        return self.slot_decoder

    def activation_reserve(self) -> int:
        """On CUDA, the measured peak of the largest refill prefill (PREFILL_TOKENS prompt tokens)."""
        import torch

        if self.llm.device.type != "cuda":
            return 0
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            if self.fused is None:
                self.llm(input_ids=torch.full((1, 870), self.sp.pad, device="cuda"), use_cache=True)
            else:
                width = min(PREFILL_TOKENS, self.fused.max_positions)
                keys, values = self.fused.kv_cache(1, width)
                ids = torch.full((1, width), self.sp.pad, device="cuda")
                lens = torch.tensor([width], device="cuda")
                self.fused.prefill(ids, lens, torch.zeros(1, dtype=torch.long, device="cuda"), keys, values)
                del keys, values
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)

    def close(self) -> None:
        self.slot_decoder = self.fused = None
