"""What every GLM-TTS decode path shares: the special token ids, sampling settings, the output vocabulary,
and the `Decoder` protocol the engine and the audio stages talk to (slot_decoder.py is the one the engine
runs; reference.py, Hugging Face's forward with the same sampler, is the tests' oracle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

SPECIAL_TOKENS = {"ats": "<|audio_0|>", "boa": "<|begin_of_audio|>", "eoa": "<|user|>", "pad": "<|endoftext|>"}
RowDone = Callable[[int, list[int], bool], None]  # (request index, speech tokens, truncated)
# Rolling chains: (finished request index, its speech tokens, truncated) -> (request index, prompt) now ready
Follow = Callable[[int, list[int], bool], list[tuple[int, list[int]]]]


@dataclass(frozen=True)
class SpecialIds:
    ats: int  # id of <|audio_0|>: speech token k is ats + k
    n_speech: int  # speech vocabulary (32768 for GLM-TTS)
    boa: int
    eoa: int
    pad: int


def special_ids(tokenizer) -> SpecialIds:
    """Resolve special tokens through the tokenizer, as the official code does, and check them.

    Raises ValueError when a special token is not one token or there are no <|audio_N|> tokens."""
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


def output_ids(sp: SpecialIds) -> torch.Tensor:
    """Vocabulary ids a row may emit, speech tokens then EOA: nothing else can become audio (vllm-omni
    restricts the same way; the official loop samples the whole vocabulary)."""
    return torch.cat([torch.arange(sp.ats, sp.ats + sp.n_speech), torch.tensor([sp.eoa])])


class Decoder(Protocol):
    """A GLM-TTS decode: speech tokens (0-based) per prompt and whether each was cut at its maximum length
    (min_ratio/max_ratio x its text tokens) instead of ending with EOA. `on_row_done(index, tokens, truncated)`
    is called as each row finishes (the flow and vocoder start on it while the others still decode)."""

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
    ) -> tuple[list[list[int]], list[bool]]: ...
