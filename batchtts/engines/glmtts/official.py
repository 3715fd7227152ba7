"""The parts of GLM-TTS that are model code in its own repository and on no package index: the
flow-matching DiT and the HiFT vocoder. They are imported from a GLM-TTS checkout the user names
(`GLMTTS_HOME`), never copied into batchtts. (The speech tokenizer is batchtts's own:
speech_tokenizer.py.)"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from batchtts import config
from batchtts.errors import EnvironmentProblem


@contextlib.contextmanager
def _cwd(model_dir: Path):
    """The official loaders open 'ckpt/...' relative to the working directory; the model folder IS that
    ckpt/ folder (the hub layout), so they run in a temporary folder whose `ckpt` links to it."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="batchtts-glmtts-") as tmp:
        (Path(tmp) / "ckpt").symlink_to(model_dir, target_is_directory=True)
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def glmtts_home() -> Path:
    home = config.glmtts_home()
    if home is None:
        raise EnvironmentProblem(
            "GLM-TTS's flow and vocoder are code in its repository: clone "
            "https://github.com/zai-org/GLM-TTS, install its requirements, and set GLMTTS_HOME to the checkout "
        )
    if not (home / "utils" / "tts_model_util.py").is_file():
        raise EnvironmentProblem(f"{home} is not a GLM-TTS checkout (no utils/tts_model_util.py); check GLMTTS_HOME")
    return home


class OfficialModules:
    def __init__(self, home: Path, model_dir: Path, device: str, sample_rate: int):
        if str(home) not in sys.path:
            sys.path.insert(0, str(home))
        try:
            from utils.tts_model_util import Token2Wav
            from utils.yaml_util import load_flow_model
        except ImportError as exc:
            raise EnvironmentProblem(
                f"cannot import GLM-TTS code from {home} ({exc}); install its requirements into this environment"
            ) from None
        with _cwd(model_dir):
            flow = load_flow_model(str(model_dir / "flow" / "flow.pt"), str(model_dir / "flow" / "config.yaml"), device)
            self.token2wav = Token2Wav(flow, sample_rate=sample_rate, device=device)
        self.device = device

    @torch.inference_mode()
    def waveform(
        self, tokens: list[int], prompt_tokens: np.ndarray, prompt_mel: np.ndarray, embedding: np.ndarray
    ) -> np.ndarray:
        wav, _ = self.token2wav.token2wav_with_cache(
            tokens,
            prompt_token=torch.as_tensor(prompt_tokens, dtype=torch.int32)[None],
            prompt_feat=torch.as_tensor(prompt_mel, dtype=torch.float32)[None],
            embedding=torch.as_tensor(embedding, dtype=torch.float32)[None],
        )
        return wav.detach().float().cpu().numpy().reshape(-1)
