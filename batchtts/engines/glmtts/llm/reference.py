"""The GLM-TTS language model stage, batched in batchtts.

GLM-TTS's LLM is a plain `LlamaForCausalLM` fed [prompt text, text, BOA, prompt speech + offset] and
decoding speech tokens until EOA (`<|user|>`), at least `min_ratio` and at most `max_ratio` times the
text-token count. The official code decodes one sentence at a time; here every row of a batch is
left-padded with an attention mask and explicit position ids (so a row's positions are the same as
when it runs alone), shares one KV cache, samples with counter-based random numbers of its own
(sampling.py), and leaves the batch (and the cache) as soon as it has finished. This is the oracle
the slot decoder (slot_decoder.py, the only path the engine runs) is tested against: Hugging Face's forward,
the same sampler. The engine never imports it; bench_llm.py runs it as the one-at-a-time baseline.
"""

from __future__ import annotations

import torch

from batchtts.engines.glmtts.llm.sampling import DRAW_PICK, DRAW_REPEAT, HISTORY, RowParams, k_cap_for, sample, uniform
from batchtts.engines.glmtts.llm.types import Sampling, SpecialIds, output_ids


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


def choose(
    logits: torch.Tensor,
    rows: list[int],
    tokens: list[list[int]],
    min_len: list[int],
    sampling: list[Sampling],
    seeds: list[int],
    sp: SpecialIds,
    out_ids: torch.Tensor,
) -> list[int]:
    """The next vocabulary id of each row (logits row i belongs to request rows[i]), by the device sampler
    of sampling.py over the speech tokens and EOA, with uniforms hashed from (seed, step, draw): the same
    rules and numbers as the slot decoder, fed from host lists here. EOA is barred before min_len."""
    device = logits.device
    history = torch.full((len(rows), HISTORY), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        recent = tokens[row][-HISTORY:]
        if recent:
            history[r, HISTORY - len(recent) :] = torch.tensor(recent)
    step = torch.tensor([len(tokens[row]) for row in rows], device=device)
    seed = torch.tensor([seeds[row] for row in rows], device=device)
    eoa_ok = step >= torch.tensor([min_len[row] for row in rows], device=device)
    chosen = [sampling[row] for row in rows]
    picked = sample(
        logits[:, out_ids],
        eoa_ok,
        RowParams.of(chosen, device),
        history.to(device),
        uniform(seed, step, DRAW_PICK),
        uniform(seed, step, DRAW_REPEAT),
        k_cap_for(chosen),
    ).tolist()
    return [sp.eoa if p == sp.n_speech else sp.ats + p for p in picked]


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
    out_ids = output_ids(sp).to(device)

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
        picks = choose(logits, active, tokens, min_len, sampling, seeds, sp, out_ids)
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
