"""A tiny randomly initialised Whisper checkpoint in the Hugging Face layout (config, safetensors, generation
config, feature extractor, byte-level tokenizer with Whisper's special tokens): built offline, so the verify
stage's Whisper backend can be loaded and run batched in tests. Its transcripts are noise."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]  # fmt: skip


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the base of Whisper's byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def build_tiny_whisper(folder: Path, d_model: int = 32, layers: int = 1) -> Path:
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    for tok in SPECIAL:
        vocab[tok] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "WhisperTokenizer", "model_max_length": 448, "errors": "replace",
                    "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                    "pad_token": "<|endoftext|>", "additional_special_tokens": SPECIAL[1:]}),
        encoding="utf-8",
    )  # fmt: skip
    ids = {t: vocab[t] for t in SPECIAL}
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_source_positions=1500, max_target_positions=64,
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"], begin_suppress_tokens=None, suppress_tokens=None,
    )  # fmt: skip
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(folder)
    GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"], max_length=64,
        is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"], "<|zh|>": ids["<|zh|>"]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        forced_decoder_ids=None, begin_suppress_tokens=[], suppress_tokens=[],
    ).save_pretrained(folder)  # fmt: skip
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder
