"""The GLM-TTS language model stage, batched in batchtts.

GLM-TTS's LLM is a plain `LlamaForCausalLM` fed [prompt text, text, BOA, prompt speech + offset] and
decoding speech tokens until EOA (`<|user|>`), at least `min_ratio` and at most `max_ratio` times the
text-token count. The official code decodes one sentence at a time; here every row of a batch is
left-padded with an attention mask and explicit position ids (so a row's positions are the same as
when it runs alone), shares one KV cache, samples with its own seeded generator, and leaves the
batch (and the cache) as soon as it has finished, so finished rows cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SPECIAL_TOKENS = {"ats": "<|audio_0|>", "boa": "<|begin_of_audio|>", "eoa": "<|user|>", "pad": "<|endoftext|>"}


@dataclass(frozen=True)
class SpecialIds:
    ats: int  # id of <|audio_0|>: speech token k is ats + k
    n_speech: int  # speech vocabulary (32768 for GLM-TTS)
    boa: int
    eoa: int
    pad: int


def special_ids(tokenizer) -> SpecialIds:
    """Resolve special tokens through the tokenizer, as the official code does, and check them."""
    ids = {}
    for key, text in SPECIAL_TOKENS.items():
        enc = tokenizer.encode(text, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(f"the text tokenizer splits {text} into {len(enc)} tokens; is this a GLM-TTS tokenizer?")
        ids[key] = enc[0]
    n = 0
    vocab = tokenizer.get_vocab()
    while vocab.get(f"<|audio_{n}|>") == ids["ats"] + n:
        n += 1
    if n == 0:
        raise ValueError("the text tokenizer has no <|audio_N|> tokens")
    return SpecialIds(ids["ats"], n, ids["boa"], ids["eoa"], ids["pad"])


@dataclass(frozen=True)
class Sampling:
    """GLM-TTS defaults: RAS (repetition-aware sampling) with top-k 25, top-p 0.8, window 10, tau_r 0.1."""

    top_k: int = 25
    top_p: float = 0.8
    temperature: float = 1.0
    ras: bool = True
    window: int = 10
    tau_r: float = 0.1
    greedy: bool = False


def sample_rows(
    logp: torch.Tensor, decoded: list[list[int]], sampling: list[Sampling], gens: list[torch.Generator]
) -> list[int]:
    """One token per row of log-probs over the vocabulary, with the official sampling rules, for all
    rows at once: a step costs a few batched kernels and one host sync, not a sort and a sync per row.

    Randomness comes from each row's own CPU generator (one uniform per step, and one more when a
    repetition forces a redraw), so a row draws the same tokens in any batch. A uniform picks a token by
    inverse CDF over the kept, unnormalised probabilities, the distribution torch.multinomial samples.
    `decoded` holds each row's recent ids (at least its repetition window).
    """
    device = logp.device
    temperature = torch.tensor([s.temperature for s in sampling], device=device)[:, None]
    probs = torch.softmax(logp / temperature, dim=-1)
    ranked, ids = probs.topk(min(max(s.top_k for s in sampling), probs.shape[-1]), dim=-1)
    rank = torch.arange(ranked.shape[-1], device=device)
    before = ranked.cumsum(-1) - ranked  # mass of the tokens ranked above each token
    top_k = torch.tensor([s.top_k for s in sampling], device=device)[:, None]
    nucleus = [s.top_p if s.ras else math.inf for s in sampling]  # plain top-k keeps no nucleus
    top_p = torch.tensor(nucleus, device=device)[:, None]
    keep = (rank < top_k) & (before < top_p)
    u = torch.tensor([torch.rand(1, generator=g).item() for g in gens], device=device)
    tokens = ids.gather(1, _inverse_cdf(ranked * keep, u)[:, None])[:, 0].tolist()
    again = [
        r
        for r, (s, t) in enumerate(zip(sampling, tokens, strict=True))
        if s.ras and decoded[r][-s.window :].count(t) >= s.window * s.tau_r
    ]
    if again:  # repetition: draw from the whole distribution
        u = torch.tensor([torch.rand(1, generator=gens[r]).item() for r in again], device=device)
        for r, t in zip(again, _inverse_cdf(probs[again], u).tolist(), strict=True):
            tokens[r] = t
    return tokens


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per row, the index where the running sum of `weights` first exceeds u x their total."""
    running = weights.cumsum(-1)
    picks = torch.searchsorted(running, (u * running[:, -1])[:, None], right=True)[:, 0]
    return picks.clamp(max=weights.shape[-1] - 1)


def sample(logp: torch.Tensor, decoded: list[int], s: Sampling, gen: torch.Generator) -> int:
    """One token from one row of log-probs (see sample_rows)."""
    if s.greedy:
        return int(torch.argmax(logp))
    return sample_rows(logp[None], [decoded], [s], [gen])[0]


def left_pad(prompts: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ids, attention mask and position ids of left-padded prompts: each row's positions start at 0, as
    when it runs alone."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def allowed_ids(vocab_size: int, sp: SpecialIds, device) -> torch.Tensor:
    """0 for speech tokens and EOA, -inf elsewhere: other ids cannot be turned into audio (vllm-omni
    restricts the same way)."""
    allowed = torch.full((vocab_size,), float("-inf"), device=device)
    allowed[sp.ats : sp.ats + sp.n_speech] = 0.0
    allowed[sp.eoa] = 0.0
    return allowed


def choose(
    logits: torch.Tensor,
    rows: list[int],
    tokens: list[list[int]],
    min_len: list[int],
    sampling: list[Sampling],
    gens: list[torch.Generator],
    sp: SpecialIds,
    allowed: torch.Tensor,
) -> list[int]:
    """The next id of each row (logits row i belongs to request rows[i]); EOA is barred before min_len."""
    logp = torch.log_softmax(logits.float(), dim=-1) + allowed
    early = [len(tokens[row]) < min_len[row] for row in rows]
    logp[:, sp.eoa].masked_fill_(torch.tensor(early, device=logp.device), float("-inf"))
    greedy = [sampling[row].greedy for row in rows]
    out = logp.argmax(-1).tolist() if any(greedy) else [sp.eoa] * len(rows)
    drawn = [r for r, g in enumerate(greedy) if not g]
    if drawn:
        picks = sample_rows(
            logp[drawn],
            [[sp.ats + t for t in tokens[rows[r]][-sampling[rows[r]].window :]] for r in drawn],
            [sampling[rows[r]] for r in drawn],
            [gens[rows[r]] for r in drawn],
        )
        for r, t in zip(drawn, picks, strict=True):
            out[r] = t
    return out


@torch.inference_mode()
def decode_batch(
    model,
    prompts: list[list[int]],
    text_lens: list[int],
    sp: SpecialIds,
    sampling: list[Sampling],
    seeds: list[int],
    min_ratio: float = 2.0,
    max_ratio: float = 20.0,
) -> tuple[list[list[int]], list[bool]]:
    """Speech tokens (0-based) for each prompt, and whether each row was cut at its maximum length
    instead of ending with EOA. Rows are independent of each other: the same prompt and seed give the
    same tokens alone or in any batch."""
    device = model.device
    rows = len(prompts)
    ids, mask, positions = left_pad(prompts, sp.pad, device)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    allowed = allowed_ids(model.config.vocab_size, sp, device)

    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache, logits = out.cache, out.logits[:, -1, :]
    next_pos = positions[:, -1] + 1
    active = list(range(rows))
    tokens: list[list[int]] = [[] for _ in range(rows)]
    ended = [False] * rows
    min_len = [int(n * min_ratio) for n in text_lens]
    max_len = [int(n * max_ratio) for n in text_lens]
    while active:
        chosen, keep = [], []
        picks = choose(logits, active, tokens, min_len, sampling, gens, sp, allowed)
        for r, (row, t) in enumerate(zip(active, picks, strict=True)):
            if t == sp.eoa:
                ended[row] = True
                continue
            tokens[row].append(t - sp.ats)
            if len(tokens[row]) < max_len[row]:
                keep.append(r)
                chosen.append(t)
        if not keep:
            break
        if len(keep) < len(active):  # finished rows leave the batch and the cache
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_pos = mask[index], next_pos[index]
            active = [active[r] for r in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        out = model(
            input_ids=torch.tensor(chosen, device=device)[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            cache=cache,
            use_cache=True,
        )
        cache, logits = out.cache, out.logits[:, -1, :]
        next_pos = next_pos + 1
    return tokens, [not e for e in ended]
