"""GLM-TTS's own decode loop (decode.py, model.py, sampling.py, slots.py) on the tiny checkpoint, fp32 on a CPU:
the slot decoder says exactly what the Hugging Face reference says, in any batch, and never waits for the host."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from batchtts.engines.glmtts import llm_cost
from batchtts.engines.glmtts.llm.capacity import (
    Row,
    decode_plan,
    default_config,
    engine_decode_plan,
    slots_for_budget,
    step_weight_bytes,
)
from batchtts.engines.glmtts.llm.llama import FusedLlama
from batchtts.engines.glmtts.llm.reference import decode_batch
from batchtts.engines.glmtts.llm.sampling import HISTORY, RowParams, k_cap_for, sample, uniform, uniform_bits
from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder, buckets
from batchtts.engines.glmtts.llm.types import Sampling, output_ids, special_ids
from tests.tiny_glmtts import build_checkpoint

SEEDS = [11, 22, 33, 44, 55, 66]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny checkpoint's LLM (fp32), its special ids, the fused model built from it, and six prompts."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    root = build_checkpoint(tmp_path_factory.mktemp("glmtts") / "model")
    sp = special_ids(AutoTokenizer.from_pretrained(root / "vq32k-phoneme-tokenizer"))
    llm = LlamaForCausalLM.from_pretrained(root / "llm", dtype=torch.float32).eval()
    fused = FusedLlama(llm, output_ids(sp))
    rng = random.Random(0)
    prompts, lens = [], []
    for _ in SEEDS:
        n = rng.randint(2, 6)
        text = [rng.randint(4, sp.ats - 1) for _ in range(5 + n)]
        speech = [sp.ats + rng.randrange(sp.n_speech) for _ in range(rng.randint(3, 30))]
        prompts.append(text + [sp.boa] + speech)
        lens.append(n)
    return llm, sp, fused, prompts, lens


# -- the counter-based RNG -------------------------------------------------------------------------------


def test_rng_reproduces_known_values_on_ints_and_tensors():
    cases = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2**40 + 5, 7, 1)]
    known = [4322206, 748658, 11595669, 2837333, 10492492]  # 24-bit values, fixed forever (DECODE_VERSION 3)
    assert [uniform_bits(*c) for c in cases] == known
    seed, step, draw = (torch.tensor([c[i] for c in cases]) for i in range(3))
    assert uniform_bits(seed, step, draw).tolist() == known
    u = uniform(torch.tensor([2**32 - 1] * 4096), torch.arange(4096), 0)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean().item() - 0.5) < 0.02


# -- the vectorised sampler against plain Python --------------------------------------------------------


def ras_reference(logits, eoa_ok, s: Sampling, history, u_pick, u_repeat):
    """GLM-TTS's sampling for one row in plain Python floats: top-k, nucleus, redraw on repetition."""
    eoa = len(logits) - 1
    allowed = [x if (i != eoa or eoa_ok) else -math.inf for i, x in enumerate(logits)]
    if s.greedy:
        return max(range(len(allowed)), key=lambda i: (allowed[i], -i)), math.inf
    top = max(allowed)
    probs = [math.exp((x - top) / s.temperature) for x in allowed]
    total = sum(probs)
    probs = [p / total for p in probs]

    def pick(weights, u):
        running, acc = [], 0.0
        for w in weights:
            acc += w
            running.append(acc)
        target = u * running[-1]
        return next((i for i, r in enumerate(running) if r > target), len(running) - 1), running, target

    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = [], 0.0
    for rank, i in enumerate(order):
        if rank >= s.top_k or (s.ras and mass >= s.top_p):
            break
        kept.append(i)
        mass += probs[i]
    j, running, target = pick([probs[i] for i in kept], u_pick)
    margins = [abs(r - target) for r in running]
    token = kept[j]
    recent = [t for t in history[-s.window :] if t >= 0]
    if s.ras and recent.count(token) >= s.window * s.tau_r:
        token, running, target = pick(probs, u_repeat)
        margins += [abs(r - target) for r in running]
    return token, min(margins)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 40),
    st.sampled_from([1, 3, 25, 64]),
    st.sampled_from([0.3, 0.8, 1.0]),
    st.sampled_from([0.7, 1.0, 1.5]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_vectorised_sampler_picks_what_plain_python_ras_picks(seed, vocab, top_k, top_p, temp, ras, greedy, eoa_ok):
    gen = torch.Generator().manual_seed(seed)
    rows = 3
    logits = torch.randn((rows, vocab), generator=gen, dtype=torch.float64).float() * 3
    history = torch.randint(-1, vocab - 1, (rows, HISTORY), generator=gen)
    history[:, : HISTORY // 2] = -1  # partly filled windows
    u_pick, u_repeat = torch.rand(rows, generator=gen), torch.rand(rows, generator=gen)
    s = Sampling(top_k=top_k, top_p=top_p, temperature=temp, ras=ras, greedy=greedy)
    got = sample(
        logits,
        torch.tensor([eoa_ok] * rows),
        RowParams.of([s] * rows, "cpu"),
        history,
        u_pick,
        u_repeat,
        k_cap_for([s]),
    )
    for r in range(rows):
        want, margin = ras_reference(
            logits[r].double().tolist(), eoa_ok, s, history[r].tolist(), u_pick[r].item(), u_repeat[r].item()
        )
        assume(greedy or margin > 1e-5)  # fp32 against fp64 may differ only at a CDF boundary
        assert got[r].item() == want


# -- continuous batching = each sentence alone ----------------------------------------------------------


@pytest.mark.slow
def test_slot_decoder_says_what_the_reference_says_alone(tiny):
    llm, sp, fused, prompts, lens = tiny
    for greedy in (False, True):
        if greedy:  # argmax from a random model rarely ends: three rows are enough
            prompts, lens = prompts[:3], lens[:3]
        samplings = [Sampling(greedy=greedy)] * len(prompts)
        alone = [
            decode_batch(llm, [p], [n], sp, [s], [seed], 2.0, 8.0)
            for p, n, s, seed in zip(prompts, lens, samplings, SEEDS[: len(prompts)], strict=True)
        ]
        want = ([a[0][0] for a in alone], [a[1][0] for a in alone])
        got = SlotDecoder(fused, sp, slots=2, length=256, check_every=4, quantum=32).decode(
            prompts, lens, sp, samplings, SEEDS[: len(prompts)], 2.0, 8.0
        )
        assert got == want
        if not greedy:
            assert len({len(t) for t in want[0]}) > 2 and not all(want[1])  # rows end at different steps


MIXED = [Sampling(top_k=25 if i % 2 else 5) for i in range(len(SEEDS))]


@pytest.fixture(scope="module")
def alone(tiny):
    """Each sentence decoded alone by the Hugging Face reference."""
    llm, sp, _, prompts, lens = tiny
    rows = [
        decode_batch(llm, [p], [n], sp, [s], [seed], 2.0, 8.0)
        for p, n, s, seed in zip(prompts, lens, MIXED, SEEDS, strict=True)
    ]
    return [r[0][0] for r in rows], [r[1][0] for r in rows]


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 7), st.permutations(range(6)), st.sampled_from([1, 3, 8]), st.sampled_from([16, 64]))
def test_any_slot_count_and_refill_order_gives_each_sentence_its_tokens(
    tiny, alone, slots, order, check_every, quantum
):
    llm, sp, fused, prompts, lens = tiny
    want, samplings = alone, MIXED
    done = []
    decoder = SlotDecoder(fused, sp, slots=slots, length=192, check_every=check_every, quantum=quantum)
    got = decoder.decode(
        prompts,
        lens,
        sp,
        samplings,
        SEEDS,
        2.0,
        8.0,
        order=list(order),
        on_row_done=lambda i, toks, cut: done.append((i, toks, cut)),
    )
    assert got == want
    assert sorted(done) == sorted((i, want[0][i], want[1][i]) for i in range(len(prompts)))
    again = decoder.decode(prompts[:2], lens[:2], sp, samplings[:2], SEEDS[:2], 2.0, 8.0)  # a reused decoder
    assert again == (want[0][:2], want[1][:2])


def test_a_prompt_longer_than_a_slot_is_refused_and_a_long_decode_is_cut_to_fit(tiny):
    llm, sp, fused, prompts, lens = tiny
    decoder = SlotDecoder(fused, sp, slots=2, length=len(prompts[0]) + 5, quantum=8)
    tokens, cut = decoder.decode(prompts[:1], lens[:1], sp, [Sampling(greedy=True)], SEEDS[:1], 2.0, 20.0)
    assert len(tokens[0]) <= 5 and cut[0]
    with pytest.raises(ValueError, match="does not fit a slot"):
        decoder.decode([prompts[0] * 2], lens[:1], sp, [Sampling()], SEEDS[:1])


# -- a decode step never waits for the host -------------------------------------------------------------


class HostSyncs(TorchDispatchMode):
    """Counts the operators that move data to the host: .item()/.tolist() and copies to the CPU."""

    def __init__(self, device):
        super().__init__()
        self.device, self.syncs = torch.device(device), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        if name.endswith("_local_scalar_dense"):
            self.syncs.append(name)
        if name.endswith(("_to_copy", "copy_")) and self.device.type != "cpu":
            if kwargs.get("device") == torch.device("cpu") or (name.endswith("copy_") and args[0].device.type == "cpu"):
                self.syncs.append(name)
        return func(*args, **kwargs)


def test_one_decode_step_makes_no_host_sync(tiny, monkeypatch):
    llm, sp, fused, prompts, lens = tiny
    decoder = SlotDecoder(fused, sp, slots=4, length=128, quantum=32)
    decoder.prefill([(s, prompts[s], 4, 40, SEEDS[s], Sampling()) for s in range(3)], k_cap=32)
    with HostSyncs("cpu") as control:
        decoder.live[:4].any().item()  # what the host does every few steps, never inside one
    assert control.syncs == ["aten._local_scalar_dense"]
    items = []
    monkeypatch.setattr(torch.Tensor, "item", lambda self: items.append(1) or 0)
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: items.append(1) or [])
    before = decoder.n_dec.clone()
    with HostSyncs("cpu") as mode:
        decoder.decode_one_token(4, 64, 32)
        decoder.decode_n_tokens(3, 4, 64, 32)
    assert mode.syncs == [] and items == []
    monkeypatch.undo()
    assert (decoder.n_dec[:3] > before[:3]).all()  # the steps really decoded


# -- the KV budget ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**40),
    st.integers(1, 2**17),
    st.lists(st.tuples(st.integers(1, 900), st.integers(1, 400), st.integers(0, 2400)), min_size=1, max_size=40),
    st.integers(1, 128),
)
def test_the_planner_never_admits_more_than_the_budget(budget, per_token, rows, max_slots):
    rows = [Row(p, min(d, w), w) for p, d, w in rows]
    length = max(r.prompt + r.worst for r in rows)
    slots = slots_for_budget(budget, per_token, length, max_slots)
    assert 0 <= slots <= max_slots and slots * length * per_token <= budget
    if slots == 0:
        with pytest.raises(ValueError, match="holds no slot"):
            decode_plan(rows, per_token, budget, max_slots=max_slots)
        return
    plan = decode_plan(rows, per_token, budget, max_slots=max_slots)
    assert plan.kv_bytes <= budget and plan.slots == slots
    assert max(r.predicted for r in rows) <= plan.decode_steps
    assert plan.decode_steps <= sum(-(-r.predicted // 8) * 8 for r in rows)  # never worse than one at a time


def test_decode_plan_at_the_real_dimensions():
    config = default_config()
    per_token = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * config["head_dim"] * 2
    assert per_token == 56 * 1024
    weights = step_weight_bytes(config, 2)
    assert 2.8e9 < weights < 3.1e9  # the layers and 32,769 output rows: not the 98,304-row embedding
    rows = [Row(900, 150, 2300)] * 1000
    plan = decode_plan(rows, per_token, budget=40 << 30, step_weight_bytes=weights, bandwidth=3e12)
    assert plan.slots == 64 and plan.kv_bytes <= 40 << 30
    assert plan.decode_steps == 15 * 152 + 150  # 16 waves, each refilled at the host's next check
    assert 0 < plan.seconds < 60 and "64 decode slots" in plan.describe()
    assert buckets(64) == [1, 2, 4, 8, 16, 32, 64] and buckets(5) == [1, 2, 4, 5]
    cost = llm_cost(config, 2)  # what `batchtts plan` can show for the engine on an H100
    engine = engine_decode_plan(cost, [(171, 10, "en")] * 1000, budget=40 << 30)
    assert engine.slots == 64 and engine.slot_tokens == 4096 and engine.speech_tokens == 65 * 1000


# -- GPU: graphs, bf16 ------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_mode_decodes_twice_with_one_decoder_in_bf16_and_agrees_with_eager_steps(tiny):
    from transformers import LlamaForCausalLM

    llm, sp, _fused, prompts, lens = tiny
    gpu = LlamaForCausalLM(llm.config).to(torch.bfloat16)
    gpu.load_state_dict(llm.state_dict())
    fused = FusedLlama(gpu.cuda().eval(), output_ids(sp))
    samplings = [Sampling()] * len(prompts)
    graphs = SlotDecoder(fused, sp, slots=4, length=256, graphs=True, quantum=64)
    first = graphs.decode(prompts, lens, sp, samplings, SEEDS, 2.0, 8.0)
    second = graphs.decode(prompts, lens, sp, samplings, SEEDS, 2.0, 8.0)  # the old path crashed here
    assert first == second and len(graphs._graphs) == len(buckets(4)) * 4
    eager = SlotDecoder(fused, sp, slots=4, length=256, graphs=False, quantum=64)
    assert eager.decode(prompts, lens, sp, samplings, SEEDS, 2.0, 8.0) == first
    # one step, replayed against eager, from the same state
    for d in (graphs, eager):
        d.prefill([(s, prompts[s], 4, 40, SEEDS[s], samplings[s]) for s in range(4)], k_cap=32)
    graphs.decode_n_tokens(5, 4, 64, 32)
    with HostSyncs("cuda") as mode:  # an eager step on the GPU copies nothing to the host
        eager.decode_n_tokens(5, 4, 64, 32)
    assert mode.syncs == []
    torch.cuda.synchronize()
    for name in ("ids", "lens", "n_dec", "live", "out", "history"):
        assert torch.equal(getattr(graphs, name), getattr(eager, name)), name


# -- graph bookkeeping ------------------------------------------------------------------------------


def test_two_top_k_values_decode_with_one_shape_set_per_top_k_width_as_on_cuda(tiny):
    """A job mixing top_k values: each top-k width gets its (bucket, span) step shapes registered once, as a
    CUDA run captures them (on a CPU the same steps run eagerly), every step runs at a registered shape,
    and the tokens are the reference's."""
    llm, sp, fused, prompts, lens = tiny
    decoder = SlotDecoder(fused, sp, slots=4, length=512, quantum=64)
    seeds = SEEDS
    for samplings in (
        [Sampling(top_k=25)] * len(prompts),
        [Sampling(top_k=100)] * len(prompts),
        [Sampling(top_k=25 if i % 2 else 100) for i in range(len(prompts))],  # one call, both values
    ):
        want = decode_batch(llm, prompts, lens, sp, samplings, seeds, 2.0, 8.0)
        assert decoder.decode(prompts, lens, sp, samplings, seeds, 2.0, 8.0) == want
    spans = [64 * k for k in range(1, 9)]
    assert sorted(decoder.shapes) == [32, 128]
    for shapes in decoder.shapes.values():
        assert shapes == sorted(((n, s) for n in buckets(4) for s in spans), reverse=True)
    assert {k for _, _, k in decoder.shape_steps} == {32, 128}
    assert all((n, s) in decoder.shapes[k] for n, s, k in decoder.shape_steps)
    assert decoder.capture_seconds == 0.0 and not decoder._graphs  # nothing captured off CUDA


# -- rolling chains: a chapter's sentences follow each other through the slots --------------------------


def _chained_prompt(sp, base: list[int], previous: list[int]) -> list[int]:
    """A sentence's prompt with the sentence before it as context: its speech tokens after the speech prompt."""
    return base + [sp.ats + t for t in previous]


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_a_chain_decodes_in_one_call_what_sentence_by_sentence_decodes(tiny, slots):
    """Two chapters of three sentences: sentence n+1 enters a slot, prompted by sentence n's tokens, inside the
    same decode; its tokens equal decoding each sentence alone, in order (the Hugging Face reference)."""
    llm, sp, fused, prompts, lens = tiny
    chapters = [[0, 1, 2], [3, 4, 5]]
    want: dict[int, tuple[list[int], bool]] = {}
    for chapter in chapters:
        previous: list[int] = []
        for i in chapter:
            toks, cut = decode_batch(
                llm, [_chained_prompt(sp, prompts[i], previous)], [lens[i]], sp, [MIXED[i]], [SEEDS[i]], 2.0, 8.0
            )
            want[i], previous = (toks[0], cut[0]), toks[0]
    follower = {c[k]: c[k + 1] for c in chapters for k in range(len(c) - 1)}
    entered: list[int] = []

    def then(i, toks, cut):
        entered.append(i)
        return [(follower[i], _chained_prompt(sp, prompts[follower[i]], toks))] if i in follower else []

    first = [prompts[i] if i in (0, 3) else None for i in range(len(prompts))]
    decoder = SlotDecoder(fused, sp, slots=slots, length=256, check_every=4, quantum=32)
    got = decoder.decode(first, lens, sp, MIXED, SEEDS, 2.0, 8.0, then=then)
    assert got == ([want[i][0] for i in range(6)], [want[i][1] for i in range(6)])
    assert sorted(entered) == list(range(6))
    for chapter in chapters:  # each chapter's sentences finished in order
        assert [i for i in entered if i in chapter] == chapter
    with pytest.raises(ValueError, match="never got their prompt"):
        decoder.decode(first, lens, sp, MIXED, SEEDS, 2.0, 8.0, then=lambda i, t, c: [])
