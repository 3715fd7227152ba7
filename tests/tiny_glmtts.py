"""Builds a tiny, randomly initialised GLM-TTS checkpoint in the hub layout (the download's root is the official
`ckpt/` folder): llm/ (the published Llama config scaled down: same fields, tied embeddings, explicit head_dim),
vq32k-phoneme-tokenizer/ (special and <|audio_N|> tokens), speech_tokenizer/ (the published Whisper-VQ config
scaled down, weights under the official `model.encoder.*` names), flow/ and hift/. The CAM++ ONNX graph is
written beside it, as a user gets it from the GitHub repository. The code that loads the real multi-GB
checkpoint is the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.tiny_glmtts_audio import build_audio_stages

DATA = Path(__file__).parent / "data" / "glmtts"
LLM_CONFIG = Path(__file__).parent.parent / "batchtts" / "engines" / "glmtts" / "llm-config.json"  # the published one
N_SPEECH = 64
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-:;") + list(
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年。，？"
)
SPECIALS = ["<|endoftext|>", "[UNK]", "<|user|>", "<|begin_of_audio|>"]


def build_tokenizer(folder: Path) -> None:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    for k in range(N_SPEECH):
        vocab[f"<|audio_{k}|>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.add_special_tokens(SPECIALS + [f"<|audio_{k}|>" for k in range(N_SPEECH)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    fast.save_pretrained(folder)


def tiny_llm_config(vocab_size: int) -> dict:
    """The published llm/config.json with its sizes scaled down; every other field as published."""
    config = json.loads(LLM_CONFIG.read_text())
    config.update(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,  # not hidden / heads, so code that assumes it is caught
        max_position_embeddings=4096,
        batchtts_test_checkpoint=True,  # not the published sizes: the loader skips its published-values check
    )
    assert config["tie_word_embeddings"] is True
    return config


def build_llm(folder: Path, vocab_size: int, seed: int = 0) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    drop = ("architectures", "transformers_version")
    config = {k: v for k, v in tiny_llm_config(vocab_size).items() if k not in drop}
    # The default init, unscaled: with tied embeddings a scaled-up embedding makes each token its own best
    # successor, and sampled rows then never reach EOA.
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(folder)


def tiny_speech_tokenizer_config() -> dict:
    config = json.loads((DATA / "speech-tokenizer-config.json").read_text())
    config.update(
        d_model=64,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        encoder_layers=3,  # one more than is used: the loader must skip it, as it skips the real 16 unused
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
        decoder_layers=1,
        num_hidden_layers=1,
        pooling_position=2,
        quantize_position=2,
        quantize_vocab_size=N_SPEECH,
        quantize_causal_block_size=50,  # 1 s, so a 4 s prompt crosses blocks
    )
    return config


def speech_tokenizer_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names, including the ones the tokenizer never uses."""
    from batchtts.engines.glmtts.voice.speech_tokenizer import WhisperVQEncoder

    torch.manual_seed(seed)
    used = {**config, "encoder_layers": config["quantize_position"]}
    model = WhisperVQEncoder(used)
    with torch.no_grad():
        model.codebook.weight.normal_(0.0, 0.5)
        model.conv1.weight.mul_(4.0)
    state = {f"model.encoder.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    dim, extra = config["d_model"], torch.Generator().manual_seed(seed + 1)
    for i in range(config["quantize_position"], config["encoder_layers"]):
        state[f"model.encoder.layers.{i}.fc1.weight"] = torch.randn(config["encoder_ffn_dim"], dim, generator=extra)
    state["model.encoder.layer_norm.weight"] = torch.ones(dim)
    state["model.encoder.ema_count"] = torch.ones(config["quantize_vocab_size"])  # quantize_ema_decay is set
    state["model.encoder.ema_weight"] = model.codebook.weight.detach().clone()
    state["model.encoder.embed_positions2.weight"] = state["model.encoder.embed_positions.weight"][:750].clone()
    state["model.decoder.embed_tokens.weight"] = torch.randn(8, dim, generator=extra)
    return state


def build_speech_tokenizer(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor

    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_speech_tokenizer_config()
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in speech_tokenizer_state_dict(config, seed).items()}
    save_file(state, folder / "model.safetensors")
    WhisperFeatureExtractor(feature_size=config["num_mel_bins"]).save_pretrained(str(folder))


def build_campplus(path: Path, seed: int = 0) -> None:
    w = np.random.default_rng(seed).normal(0, 0.1, (80, 192)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], ["embedding"]),
        ],
        "campplus_tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 192])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime releases back to 1.10 load (1.30 reads IR <= 13)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def build_hub_files(root: Path) -> Path:
    """The files of the hub repository (no lock): what `batchtts download` fetches into the model folder."""
    build_tokenizer(root / "vq32k-phoneme-tokenizer")
    build_llm(root / "llm", len(SPECIALS) + len(CHARS) + N_SPEECH)
    build_speech_tokenizer(root / "speech_tokenizer")
    build_audio_stages(root)
    return root


def write_lock(root: Path) -> None:
    files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    lock = {"repo": "zai-org/GLM-TTS", "revision": "main", "commit": "tiny" + "0" * 36, "endpoint": "test"}
    (root / "batchtts-model.lock.json").write_text(json.dumps({**lock, "files": files}))


def build_checkpoint(root: Path) -> Path:
    """A downloaded model folder: the hub files and a download lock, plus frontend/campplus.onnx where a user
    puts the speaker encoder (see batchtts/engines/glmtts/assets.py)."""
    build_hub_files(root)
    write_lock(root)
    build_campplus(root / "frontend" / "campplus.onnx")
    return root
