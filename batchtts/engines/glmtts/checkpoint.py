"""Loading GLM-TTS's text tokenizer and LLM from a model folder, and checking them against what was published.

Every failure is an `EnvironmentProblem` (exit 4) whose one line names the file: an unreadable tokenizer, a
missing or mis-shaped LLM tensor, special ids or config dimensions that are not GLM-TTS's. The published
values (checked when the folder was downloaded from the official repository, `DEFAULT_REPO`): `<|audio_0|>`
61498, `<|begin_of_audio|>` 59260, EOA (`<|user|>`) 59253 and 32,768 speech tokens (a third-party inference
log of the official code); the LLM's dimensions are llm-config.json's (the published llm/config.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from batchtts.errors import EnvironmentProblem

PUBLISHED_IDS = {"ats": 61498, "boa": 59260, "eoa": 59253, "n_speech": 32768}
DIMENSIONS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
)
TOKENIZER_DIR = "vq32k-phoneme-tokenizer"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def load_tokenizer(folder: Path):
    """The text tokenizer of `folder/vq32k-phoneme-tokenizer` (the official one is remote code, ChatGLM4's)."""
    from transformers import AutoTokenizer

    path = Path(folder) / TOKENIZER_DIR
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError, ImportError, json errors...
        where = path / "tokenizer_config.json"
        raise EnvironmentProblem(f"{where}: cannot load the text tokenizer ({_first_line(exc)})") from None


def special_ids_of(tokenizer, folder: Path, published: bool):
    """The special ids through the tokenizer; with `published`, they must be GLM-TTS's published ones."""
    from batchtts.engines.glmtts.llm.types import special_ids

    where = Path(folder) / TOKENIZER_DIR / "tokenizer_config.json"
    try:
        sp = special_ids(tokenizer)
    except Exception as exc:
        raise EnvironmentProblem(f"{where}: {_first_line(exc)}") from None
    if published:
        got = {"ats": sp.ats, "boa": sp.boa, "eoa": sp.eoa, "n_speech": sp.n_speech}
        wrong = [f"{k} {got[k]} (published {v})" for k, v in PUBLISHED_IDS.items() if got[k] != v]
        if wrong:
            raise EnvironmentProblem(f"{where}: not the published GLM-TTS tokenizer: {', '.join(wrong)}")
    return sp


def check_llm_config(folder: Path, published_config: dict | None) -> dict:
    """llm/config.json, and with `published_config`, every dimension in DIMENSIONS equal to it."""
    path = Path(folder) / "llm" / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvironmentProblem(f"{path}: cannot read the LLM config ({_first_line(exc)})") from None
    if published_config is not None:
        wrong = [
            f"{k} {cfg.get(k)} (published {published_config.get(k)})"
            for k in DIMENSIONS
            if cfg.get(k) != published_config.get(k)
        ]
        if wrong:
            raise EnvironmentProblem(f"{path}: not the published GLM-TTS LLM: {', '.join(wrong)}")
    return cfg


def load_llm(folder: Path, dtype, device: str, sp):
    """The LLM of `folder/llm` in `dtype` on `device`; a missing, unexpected or mis-shaped tensor, or a
    vocabulary too small for the speech tokens, stops with the folder named."""
    from transformers import LlamaForCausalLM

    path = Path(folder) / "llm"
    try:
        llm, info = LlamaForCausalLM.from_pretrained(path, dtype=dtype, output_loading_info=True)
    except Exception as exc:
        raise EnvironmentProblem(f"{path}: cannot load the LLM weights ({_first_line(exc)})") from None
    bad = [f"{k} {', '.join(sorted(map(str, v))[:3])}" for k, v in info.items() if k != "error_msgs" and v]
    if info.get("error_msgs"):
        bad.append(str(next(iter(info["error_msgs"]))).splitlines()[0])
    if bad:
        raise EnvironmentProblem(f"{path}: the LLM weights do not match llm/config.json: {'; '.join(bad)}")
    rows = llm.get_input_embeddings().weight.shape[0]
    if max(sp.ats + sp.n_speech, sp.eoa + 1, sp.boa + 1) > rows:
        raise EnvironmentProblem(
            f"{path}: the embedding has {rows} rows but the tokenizer's speech tokens end at {sp.ats + sp.n_speech}"
        )
    return llm.to(device).eval()
