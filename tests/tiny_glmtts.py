"""Builds a tiny, randomly initialised GLM-TTS checkpoint in the real file layout (LLM config and
safetensors, text tokenizer with the special and <|audio_N|> tokens, CAM++ ONNX graph), so the code that
loads the real multi-GB checkpoint is the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.tiny_glmtts_audio import build_audio_stages

N_SPEECH = 64
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-") + list(
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"
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


def build_llm(folder: Path, vocab_size: int, seed: int = 0) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper logits than the default init, so greedy decoding has clear winners
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(folder)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def build_checkpoint(root: Path) -> Path:
    """root/ckpt/{llm,vq32k-phoneme-tokenizer,...} and root/frontend/campplus.onnx, plus a download lock."""
    build_tokenizer(root / "ckpt" / "vq32k-phoneme-tokenizer")
    build_llm(root / "ckpt" / "llm", len(SPECIALS) + len(CHARS) + N_SPEECH)
    build_campplus(root / "frontend" / "campplus.onnx")
    for sub in ("speech_tokenizer", "flow", "hift"):
        (root / "ckpt" / sub).mkdir(parents=True, exist_ok=True)
    build_audio_stages(root / "ckpt")  # flow's hook: tiny flow/ and hift/ (tests/tiny_glmtts_audio.py)
    files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    lock = {
        "repo": "zai-org/GLM-TTS",
        "revision": "main",
        "commit": "tiny" + "0" * 36,
        "endpoint": "test",
        "files": files,
    }
    (root / "batchtts-model.lock.json").write_text(json.dumps(lock))
    return root


STUB_FILES = {
    "utils/__init__.py": "",
    "cosyvoice/__init__.py": "",
    "cosyvoice/cli/__init__.py": "",
    "utils/yaml_util.py": """
class _Flow:
    input_frame_rate = 25


def load_flow_model(flow_ckpt_path, config_path, device):
    return _Flow()


def load_speech_tokenizer(model_path):
    return None, None
""",
    "cosyvoice/cli/frontend.py": '''
class SpeechTokenizer:
    """Stand-in: 25 tokens a second from the audio's level, the interface of the official class."""

    def __init__(self, model, feature_extractor):
        pass

    def extract_speech_token(self, utts):
        out = []
        for audio, rate in utts:
            a = audio[0]
            step = rate // 25
            out.append([int(abs(float(a[i:i + step].sum())) * 997) % 64 for i in range(0, len(a) - step + 1, step)])
        return out
''',
    "utils/tts_model_util.py": '''
import math

import torch


class Token2Wav:
    """Stand-in for flow + vocoder: each speech token becomes a short tone (the interface of the official class)."""

    def __init__(self, flow, sample_rate=24000, device="cpu"):
        self.sample_rate = sample_rate

    def token2wav_with_cache(self, token_bt, n_timesteps=10, prompt_token=None, prompt_feat=None, embedding=None):
        tokens = list(token_bt)
        n = 480  # half the real 960 samples a token: a random model babbles long
        t = torch.arange(n) / self.sample_rate
        wav = torch.cat([0.3 * torch.sin(2 * math.pi * (150 + 10 * k) * t) for k in tokens] or [torch.zeros(0)])
        return wav[None], None
''',
}


def build_official_stub(home: Path) -> Path:
    """A GLM-TTS checkout's module layout with stand-ins for the speech tokenizer, flow and vocoder."""
    for rel, text in STUB_FILES.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    return home
