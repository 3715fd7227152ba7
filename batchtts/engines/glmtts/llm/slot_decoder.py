"""GLM-TTS decode with continuous batching over a slot KV cache; read it top to bottom like gpt-fast's generate.py.

`SlotDecoder.decode` takes a queue of prompts. Each of N slots holds one sentence; when a sentence ends (EOA,
or its maximum length) its slot is refilled with the next waiting one, whose prefill is batched with the other
refills of that moment. A rolling-context chapter is a chain: when one of its sentences ends, the next enters
a free slot ahead of the queue, prompted with the tokens just decoded (`then`). All per-row state lives in
device tensors allocated once (token to feed, cache length, decoded count, length limits, seed, sampling
settings, RAS history, decoded tokens), so a decode step (`decode_one_token`) reads and writes only the
device: sampling, the counter-based random numbers, EOA and the length rules included. The host looks at the
`live` flags every `check_every` steps (`decode_n_tokens`), which is its only wait, and reads back finished
rows there.

The step runs on the first n slots, n a bucket (1, 2, 4, ... up to N), over the first `span` cache columns,
span a multiple of `quantum` above the longest live row. On CUDA each (bucket, span) step is a CUDA graph,
captured once per decoder and top-k width (largest first, each shape warmed by an eager step just before
its capture, in "thread_local" capture mode so CUDA work the audio thread issues meanwhile cannot break it)
into one memory pool that lives as long as the decoder; the buffers the graphs read never move. The
bookkeeping (`shapes`, which step shapes exist for which top-k width) is the same on every device; a CPU
simply runs the step eagerly, so tests on a CPU see the same shapes a CUDA run captures.

A row's numbers depend only on its own prompt and seed: positions start at 0 in every slot, attention is
masked to the row's own length, and its uniforms hash (seed, step, draw). In fp32 on a CPU this gives the
same tokens in any batch; in bf16 on a GPU, matrix kernels chosen by row count may round differently.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import torch

from batchtts.engines.glmtts.llm.llama import FusedLlama
from batchtts.engines.glmtts.llm.sampling import HISTORY, RowParams, k_cap_for, push_history, sample, uniform
from batchtts.engines.glmtts.llm.types import Follow, RowDone, Sampling, SpecialIds

log = logging.getLogger(__name__)


def buckets(slots: int) -> list[int]:
    """Step widths: powers of two below the slot count, and the slot count."""
    out, n = [], 1
    while n < slots:
        out.append(n)
        n *= 2
    return [*out, slots]


def _mark(device):
    """A point in time on the device's stream (a CUDA event), or on the host's clock elsewhere."""
    if device.type != "cuda":
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


class SlotDecoder:
    def __init__(
        self,
        model: FusedLlama,
        sp: SpecialIds,
        slots: int,
        length: int,
        graphs: bool = False,
        check_every: int = 8,
        quantum: int = 256,
        prefill_tokens: int = 8192,
    ):
        if graphs and model.device.type != "cuda":
            raise ValueError("decode mode 'graphs' needs a CUDA device")
        if slots < 1 or length < 2:
            raise ValueError(f"slots={slots}, length={length}: the KV budget holds no sentence")
        self.model, self.sp, self.slots, self.check_every = model, sp, slots, check_every
        self.length = min(length, model.max_positions)
        self.quantum, self.prefill_tokens, self.use_graphs = quantum, prefill_tokens, graphs
        self.eoa_col = sp.n_speech
        dev = model.device
        self.keys, self.values = model.kv_cache(slots, self.length)
        long = dict(dtype=torch.long, device=dev)
        self.ids = torch.full((slots,), sp.pad, **long)  # the token each slot feeds next
        self.lens = torch.zeros(slots, **long)  # cache columns filled = the fed token's position
        self.n_dec = torch.zeros(slots, **long)  # speech tokens decoded
        self.min_len = torch.zeros(slots, **long)
        self.max_len = torch.ones(slots, **long)
        self.seed = torch.zeros(slots, **long)
        self.live = torch.zeros(slots, dtype=torch.bool, device=dev)
        self.ended = torch.zeros(slots, dtype=torch.bool, device=dev)  # ended by EOA (else truncated)
        self.history = torch.full((slots, HISTORY), -1, **long)
        self.out = torch.zeros((slots, self.length), **long)
        self.params = RowParams.empty(slots, dev)
        self._rows = torch.arange(slots, **long)
        self._graphs: dict[tuple[int, int, int], torch.cuda.CUDAGraph] = {}
        self.shapes: dict[int, list[tuple[int, int]]] = {}  # top-k width -> (bucket, span) steps, on any device
        self.shape_steps: dict[tuple[int, int, int], int] = {}  # (bucket, span, top-k width) -> steps run
        self.capture_seconds = 0.0  # wall time spent warming and capturing graphs, for benchmarks
        self._pool = torch.cuda.graph_pool_handle() if graphs else None  # one pool for the decoder's life
        self.steps_run = 0  # decode steps run (each for the whole bucket), for benchmarks
        self.prefill_marks: list = []  # (start, end) CUDA events or perf_counter() pairs of each prefill group

    def kv_bytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()

    # -- one step, all on the device -------------------------------------------------------------------

    def _choose(self, rows: torch.Tensor | int, logits: torch.Tensor, k_cap: int) -> None:
        """Sample the next token of some rows from their logits and apply EOA and the length rules: rows is
        an index tensor (refills) or n, the first n slots (a step: views, fewer kernels)."""
        first = isinstance(rows, int)
        index = self._rows[:rows] if first else rows

        def g(t):
            return t[:rows] if first else t.index_select(0, index)

        def put(t, value):
            if first:
                t[:rows].copy_(value)
            else:
                t.index_copy_(0, index, value)

        live, n_dec, seed, hist = g(self.live), g(self.n_dec), g(self.seed), g(self.history)
        params = RowParams(*(g(getattr(self.params, f)) for f in self.params.fields()))
        picked = sample(
            logits, n_dec >= g(self.min_len), params, hist, uniform(seed, n_dec, 0), uniform(seed, n_dec, 1), k_cap
        )
        is_eoa = picked == self.eoa_col
        emit = live & ~is_eoa
        col = n_dec.clamp(max=self.length - 1)
        self.out[index, col] = torch.where(emit, picked, self.out[index, col])
        push_history(hist, picked, emit)  # in place: on a view, that is the slots' own history
        if not first:
            put(self.history, hist)
        n_dec = n_dec + emit
        finished = live & (is_eoa | (n_dec >= g(self.max_len)))
        put(self.n_dec, n_dec)
        put(self.ended, g(self.ended) | (live & is_eoa))
        put(self.live, live & ~finished)
        put(self.ids, torch.where(emit, picked + self.sp.ats, g(self.ids)))

    def decode_one_token(self, n: int, span: int, k_cap: int) -> None:
        """Slots 0..n-1 feed their token, attend over `span` columns and choose the next (dead rows idle)."""
        live = self.live[:n]
        logits = self.model.step(self.ids[:n], self.lens[:n], self.keys, self.values, span)
        self.lens[:n] += live
        self._choose(n, logits, k_cap)

    def decode_n_tokens(self, steps: int, n: int, span: int, k_cap: int) -> None:
        graph = self._graphs.get((n, span, k_cap))
        self.steps_run += steps
        self.shape_steps[(n, span, k_cap)] = self.shape_steps.get((n, span, k_cap), 0) + steps
        for _ in range(steps):
            if graph is not None:
                graph.replay()
            else:
                self.decode_one_token(n, span, k_cap)

    # -- CUDA graphs ----------------------------------------------------------------------------------

    def _spans(self) -> list[int]:
        return sorted({min(self.length, q) for q in range(self.quantum, self.length + self.quantum, self.quantum)})

    def capture(self, k_cap: int) -> None:
        """Register every (bucket, span) step shape for top-k width `k_cap` and, on CUDA, capture each as a
        graph, largest first, while no slot is live (a step then changes nothing but unused cache columns).
        Each shape is warmed by one eager step on a side stream right before its capture. Graphs are kept for
        the decoder's life; a failed capture leaves the decoder on eager steps (the same tokens, slower)."""
        if k_cap in self.shapes:
            return
        shapes = sorted(((n, s) for n in buckets(self.slots) for s in self._spans()), reverse=True)
        self.shapes[k_cap] = shapes
        if not self.use_graphs:
            return
        start = time.perf_counter()
        try:
            for n, span in shapes:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self.decode_one_token(n, span, k_cap)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                    self.decode_one_token(n, span, k_cap)
                self._graphs[(n, span, k_cap)] = graph
            torch.cuda.synchronize()
        except RuntimeError as exc:  # the same tokens, only slower: say so and decode eagerly
            log.warning("CUDA graph capture failed (%s); decoding with eager steps", str(exc).splitlines()[0])
            self._graphs.clear()
            self.use_graphs = False
        self.capture_seconds += time.perf_counter() - start

    # -- refills --------------------------------------------------------------------------------------

    def prefill(self, entries: list[tuple[int, list[int], int, int, int, Sampling]], k_cap: int) -> None:
        """Fill slots: entries are (slot, prompt ids, min length, max length, seed, sampling). Prompts go
        through the model right-padded, in groups of at most `prefill_tokens` tokens, then each slot's
        first token is chosen from its prompt's last logits."""
        dev = self.model.device
        group: list = []
        for entry in sorted(entries, key=lambda e: len(e[1])):
            width = max(len(entry[1]), *(len(e[1]) for e in group)) if group else len(entry[1])
            if group and width * (len(group) + 1) > self.prefill_tokens:
                self._prefill_group(group, k_cap, dev)
                group = []
            group.append(entry)
        if group:
            self._prefill_group(group, k_cap, dev)

    def _prefill_group(self, group, k_cap: int, dev) -> None:
        width = max(len(e[1]) for e in group)
        ids = torch.full((len(group), width), self.sp.pad, dtype=torch.long)
        for r, e in enumerate(group):
            ids[r, : len(e[1])] = torch.tensor(e[1], dtype=torch.long)
        lens = torch.tensor([len(e[1]) for e in group], dtype=torch.long)
        index = torch.tensor([e[0] for e in group], dtype=torch.long)
        ids, lens, index = ids.to(dev), lens.to(dev), index.to(dev)

        def put(t: torch.Tensor, values) -> None:
            t.index_copy_(0, index, torch.tensor(values, dtype=t.dtype).to(dev))

        put(self.lens, [len(e[1]) for e in group])
        put(self.n_dec, [0] * len(group))
        put(self.min_len, [e[2] for e in group])
        put(self.max_len, [e[3] for e in group])
        put(self.seed, [e[4] for e in group])
        put(self.live, [True] * len(group))
        put(self.ended, [False] * len(group))
        self.history.index_fill_(0, index, -1)
        self.params.put(index, RowParams.of([e[5] for e in group], dev))
        start = _mark(dev)
        logits = self.model.prefill(ids, lens, index, self.keys, self.values)
        self._choose(index, logits, k_cap)
        self.prefill_marks.append((start, _mark(dev)))

    def prefill_seconds(self) -> float:
        """Time spent in refill prefills since the last call (waits for the device once)."""
        marks, self.prefill_marks = self.prefill_marks, []
        if marks and not isinstance(marks[0][0], float):
            torch.cuda.synchronize()
            return sum(a.elapsed_time(b) for a, b in marks) / 1000
        return sum(b - a for a, b in marks)

    def _move(self, src: int, dst: int, columns: int) -> None:
        """Move a live row from slot src to the free slot dst (to shrink the step's bucket)."""
        self.keys[:, dst, :, :columns] = self.keys[:, src, :, :columns]
        self.values[:, dst, :, :columns] = self.values[:, src, :, :columns]
        tensors = [self.ids, self.lens, self.n_dec, self.min_len, self.max_len, self.seed, self.live, self.ended]
        tensors += [self.history, self.out] + [getattr(self.params, f) for f in self.params.fields()]
        for t in tensors:
            t[dst] = t[src]
        self.live[src] = False

    # -- memory ---------------------------------------------------------------------------------------------

    @staticmethod
    def prefill_reserve(model: FusedLlama, pad: int, tokens: int) -> int:
        """On CUDA, the measured peak bytes of one refill prefill of `tokens` prompt tokens (the largest the
        decoder runs) above what is allocated now; 0 elsewhere."""
        if model.device.type != "cuda":
            return 0
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            width = min(tokens, model.max_positions)
            keys, values = model.kv_cache(1, width)
            ids = torch.full((1, width), pad, device="cuda")
            lens = torch.tensor([width], device="cuda")
            model.prefill(ids, lens, torch.zeros(1, dtype=torch.long, device="cuda"), keys, values)
            del keys, values
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)

    # -- the loop -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def decode(
        self,
        prompts: list[list[int] | None],
        text_lens: list[int],
        sp: SpecialIds,
        sampling: list[Sampling],
        seeds: list[int],
        min_ratio: float = 2.0,
        max_ratio: float = 20.0,
        on_row_done: RowDone | None = None,
        order: list[int] | None = None,
        then: Follow | None = None,
    ) -> tuple[list[list[int]], list[bool]]:
        """Speech tokens (0-based) per prompt and whether each was cut at its maximum length. Requests enter
        slots in `order` (default: as given); `on_row_done(index, tokens, truncated)` is called as each
        row finishes, while the others still decode.

        Chains (rolling context): a prompt may be None, a request whose prompt depends on another's tokens.
        `then(index, tokens, truncated)`, called after `on_row_done`, returns (request index, prompt) pairs
        that are ready now; they enter the next free slots (the finished row's slot among them) ahead of the
        queue, in the same decode. A request whose prompt never comes decodes nothing (ValueError)."""
        if sp != self.sp:
            raise ValueError("the decoder was built for other special token ids")
        n = len(prompts)
        if n == 0:
            return [], []
        k_cap = k_cap_for(sampling)
        prompts = list(prompts)
        limits: list[tuple[int, int]] = [(0, 1)] * n

        def admit(i: int, p: list[int]) -> None:
            if len(p) >= self.length:
                raise ValueError(f"a prompt of {len(p)} tokens does not fit a slot of {self.length}")
            prompts[i] = p
            t = text_lens[i]
            limits[i] = (int(t * min_ratio), max(1, min(int(t * max_ratio), self.length - len(p))))

        if len(text_lens) != n:
            raise ValueError(f"{n} prompts but {len(text_lens)} text lengths")
        for i, p in enumerate(prompts):
            if p is not None:
                admit(i, p)
        self.live.fill_(False)  # nothing survives an earlier call that failed midway (say, out of memory)
        self.capture(k_cap)
        queue = deque(i for i in (order if order is not None else range(n)) if prompts[i] is not None)
        waiting = {i for i, p in enumerate(prompts) if p is None}
        row_of: list[int | None] = [None] * self.slots  # slot -> request index
        bound = [0] * self.slots  # host's upper bound of each slot's cache length
        tokens: list[list[int]] = [[] for _ in range(n)]
        truncated = [False] * n
        while queue or any(r is not None for r in row_of):
            free = [s for s, r in enumerate(row_of) if r is None]
            if queue and free:
                entries = []
                for s in free[: len(queue)]:
                    i = queue.popleft()
                    row_of[s], bound[s] = i, len(prompts[i])
                    entries.append((s, prompts[i], *limits[i], seeds[i], sampling[i]))
                self.prefill(entries, k_cap)
            used = [s for s, r in enumerate(row_of) if r is not None]
            width = next(b for b in buckets(self.slots) if b > used[-1])
            span = min(self.length, -(-(max(bound[s] for s in used) + self.check_every) // self.quantum) * self.quantum)
            self.decode_n_tokens(self.check_every, width, span, k_cap)
            for s in used:
                bound[s] = min(self.length - 1, bound[s] + self.check_every)
            live = self.live[:width].tolist()  # the host's one wait per check_every steps
            done = [s for s in used if not live[s]]
            if done:
                index = torch.tensor(done, device=self.out.device)
                counts = self.n_dec[index].tolist()
                ended = self.ended[index].tolist()
                rows = self.out[index, : max(counts)].tolist()
                for s, c, e, row in zip(done, counts, ended, rows, strict=True):
                    i = row_of[s]
                    tokens[i], truncated[i], row_of[s] = row[:c], not e, None
                    if on_row_done is not None:
                        on_row_done(i, tokens[i], not e)
                    if then is not None:
                        ready = [(j, p) for j, p in then(i, tokens[i], not e) if j in waiting]
                        for j, p in ready:
                            admit(j, p)
                            waiting.discard(j)
                        queue.extendleft(reversed([j for j, _ in ready]))
            if not queue:
                self._compact(row_of, bound)
        if waiting:
            raise ValueError(f"{len(waiting)} chained requests never got their prompt")
        return tokens, truncated

    def _compact(self, row_of: list[int | None], bound: list[int]) -> None:
        """With no refills left, move rows from the highest slots into free low ones while that shrinks the
        bucket the steps run at."""
        used = [s for s, r in enumerate(row_of) if r is not None]
        if not used:
            return
        target = next(b for b in buckets(self.slots) if b >= len(used))
        if used[-1] < target:
            return
        free = [s for s in range(target) if row_of[s] is None]
        for src in [s for s in used if s >= target]:
            dst = free.pop(0)
            self._move(src, dst, bound[src] + 1)
            row_of[dst], bound[dst], row_of[src] = row_of[src], bound[src], None
