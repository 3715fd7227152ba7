"""The parts of GLM-TTS that are model code in its own repository and on no package index: the
Whisper-VQ speech tokenizer, the flow-matching DiT and the HiFT vocoder. They are imported from a
GLM-TTS checkout the user names (`GLMTTS_HOME`), never copied into batchtts."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from batchtts import config
from batchtts.errors import EnvironmentProblem


@contextlib.contextmanager
def _cwd(path: Path):
    """The official loaders open 'ckpt/...' relative to the working directory."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def glmtts_home() -> Path:
    home = config.glmtts_home()
    if home is None:
        raise EnvironmentProblem(
            "GLM-TTS's speech tokenizer, flow and vocoder are code in its repository: clone "
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
            from cosyvoice.cli.frontend import SpeechTokenizer
            from utils.tts_model_util import Token2Wav
            from utils.yaml_util import load_flow_model, load_speech_tokenizer
        except ImportError as exc:
            raise EnvironmentProblem(
                f"cannot import GLM-TTS code from {home} ({exc}); install its requirements into this environment"
            ) from None
        with _cwd(model_dir):
            self.tokenizer = SpeechTokenizer(*load_speech_tokenizer(str(model_dir / "ckpt" / "speech_tokenizer")))
            flow = load_flow_model(
                str(model_dir / "ckpt" / "flow" / "flow.pt"), str(model_dir / "ckpt" / "flow" / "config.yaml"), device
            )
            self.token2wav = Token2Wav(flow, sample_rate=sample_rate, device=device)
        self.device = device

    def speech_tokens(self, audio16k: np.ndarray) -> list[int]:
        wav = torch.from_numpy(np.asarray(audio16k, np.float32))[None]
        return list(self.tokenizer.extract_speech_token([(wav, 16000)])[0])

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
