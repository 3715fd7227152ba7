"""Every environment variable batchtts reads, parsed in one place (as huggingface_hub's constants.py), and the byte
sizes people write in options and variables (12GiB, 800MB).

Read at call time, not import time, so a long-lived process (or a test) sees the current environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from batchtts.errors import EnvironmentProblem

GLMTTS_MODEL_DIR = "GLMTTS_MODEL_DIR"  # the downloaded GLM-TTS model folder (default: models/GLM-TTS)
GLMTTS_DECODE = "GLMTTS_DECODE"  # GLM-TTS decode steps: auto (CUDA graphs on CUDA), graphs, or eager
GLMTTS_DTYPE = "GLMTTS_DTYPE"  # GLM-TTS LLM and flow dtype: auto (bf16 on CUDA, fp32 elsewhere), bf16 or fp32
BATCHTTS_FREE_MEMORY = "BATCHTTS_FREE_MEMORY"  # bytes free on the device before the model loads (forces the figure)
GLMTTS_HOME = "GLMTTS_HOME"  # a GLM-TTS checkout: the official modules for cross-checks, and its CAM++ model
GLMTTS_CAMPPLUS = "GLMTTS_CAMPPLUS"  # GLM-TTS's CAM++ speaker model (campplus.onnx), wherever it is
GLMTTS_AUDIO_MEMORY = "GLMTTS_AUDIO_MEMORY"  # bytes for GLM-TTS's flow and vocoder batches on CUDA
WHISPER_MODEL_DIR = "BATCHTTS_WHISPER_DIR"  # a downloaded Whisper checkpoint (default: models/whisper-large-v3-turbo)
# 1: each batch's takes are verified after the batch is made, in the worker's own process (no ASR child process,
# no takes heard while others are made): the serial path, for comparisons and the benchmark. Scores are the same.
VERIFY_SERIAL = "BATCHTTS_VERIFY_SERIAL"
HF_ENDPOINT = "HF_ENDPOINT"  # hub or mirror URL
HF_HUB_OFFLINE = "HF_HUB_OFFLINE"  # never touch the network

DEFAULT_GLMTTS_MODEL_DIR = Path("models") / "GLM-TTS"
DEFAULT_WHISPER_REPO = "openai/whisper-large-v3-turbo"
DEFAULT_WHISPER_MODEL_DIR = Path("models") / "whisper-large-v3-turbo"
_TRUE = ("1", "true", "yes", "on")


def _get(name: str) -> str | None:
    return os.environ.get(name) or None


def glmtts_model_dir() -> Path:
    return Path(_get(GLMTTS_MODEL_DIR) or DEFAULT_GLMTTS_MODEL_DIR).resolve()


def whisper_model_dir() -> Path:
    return Path(_get(WHISPER_MODEL_DIR) or DEFAULT_WHISPER_MODEL_DIR).resolve()


def verify_serial() -> bool:
    return (_get(VERIFY_SERIAL) or "").strip().lower() in _TRUE


def glmtts_decode() -> str:
    return _get(GLMTTS_DECODE) or "auto"


def glmtts_dtype(device: str) -> str:
    """'bf16' or 'fp32': GLMTTS_DTYPE, or bf16 on CUDA and fp32 elsewhere (auto)."""
    value = (_get(GLMTTS_DTYPE) or "auto").strip().lower()
    if value not in ("auto", "bf16", "fp32"):
        raise EnvironmentProblem(f"{GLMTTS_DTYPE}={value!r}: choose auto, bf16 or fp32")
    if value == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return value


def free_memory() -> int | None:
    """BATCHTTS_FREE_MEMORY in bytes, when set: the device's free memory before any weights load, used by the
    planner and the run instead of CUDA's or /proc/meminfo's figure (tests, and planning for another machine)."""
    value = _get(BATCHTTS_FREE_MEMORY)
    try:
        return parse_size(value) if value else None
    except ValueError as exc:
        raise EnvironmentProblem(f"{BATCHTTS_FREE_MEMORY}: {exc}") from None


def glmtts_home() -> Path | None:
    home = _get(GLMTTS_HOME)
    return Path(home).resolve() if home else None


def glmtts_campplus() -> Path | None:
    path = _get(GLMTTS_CAMPPLUS)
    return Path(path).expanduser() if path else None


def glmtts_audio_memory() -> int | None:
    value = _get(GLMTTS_AUDIO_MEMORY)
    try:
        return parse_size(value) if value else None
    except ValueError as exc:
        raise EnvironmentProblem(f"{GLMTTS_AUDIO_MEMORY}: {exc}") from None


def hf_endpoint() -> str | None:
    return _get(HF_ENDPOINT)


def hf_offline() -> bool:
    return (_get(HF_HUB_OFFLINE) or "").strip().lower() in _TRUE


# Byte sizes as people write them (12GiB, 800MB) and as we print them.
_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 10**3,
    "KIB": 2**10,
    "M": 2**20,
    "MB": 10**6,
    "MIB": 2**20,
    "G": 2**30,
    "GB": 10**9,
    "GIB": 2**30,
    "T": 2**40,
    "TB": 10**12,
    "TIB": 2**40,
}


def parse_size(text: str) -> int:
    """'12GiB', '800MB', '1.5G' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 12GiB or 800MB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    if abs(n) < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"
