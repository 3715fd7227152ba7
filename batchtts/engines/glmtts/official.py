"""GLM-TTS model code that lives only in its own repository, imported from a checkout the user names
(`--glmtts-home` / `GLMTTS_HOME`), never copied into batchtts: the Whisper-VQ speech tokenizer, and the
official flow and HiFT vocoder, which batchtts no longer runs (flow.py, hift.py replace them) but keeps
as a cross-check (`official_token2wav`, used by the tests marked `official`)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from batchtts.errors import EnvironmentProblem

HOME_ENV = "GLMTTS_HOME"


@contextlib.contextmanager
def _cwd(path: Path):
    """The official loaders open 'ckpt/...' relative to the working directory."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def glmtts_home(explicit: str | Path | None = None) -> Path:
    home = explicit or os.environ.get(HOME_ENV)
    if not home:
        raise EnvironmentProblem(
            "GLM-TTS's speech tokenizer, flow and vocoder are code in its repository: clone "
            "https://github.com/zai-org/GLM-TTS, install its requirements, and set GLMTTS_HOME to the checkout "
            "(or pass --glmtts-home)"
        )
    home = Path(home).resolve()
    if not (home / "utils" / "tts_model_util.py").is_file():
        raise EnvironmentProblem(f"{home} is not a GLM-TTS checkout (no utils/tts_model_util.py); check GLMTTS_HOME")
    return home


class OfficialModules:
    def __init__(self, home: Path, model_dir: Path, device: str, sample_rate: int):
        if str(home) not in sys.path:
            sys.path.insert(0, str(home))
        try:
            from cosyvoice.cli.frontend import SpeechTokenizer
            from utils.yaml_util import load_speech_tokenizer
        except ImportError as exc:
            raise EnvironmentProblem(
                f"cannot import GLM-TTS code from {home} ({exc}); install its requirements into this environment"
            ) from None
        with _cwd(model_dir):
            self.tokenizer = SpeechTokenizer(*load_speech_tokenizer(str(model_dir / "ckpt" / "speech_tokenizer")))
        self.device = device

    def speech_tokens(self, audio16k: np.ndarray) -> list[int]:
        wav = torch.from_numpy(np.asarray(audio16k, np.float32))[None]
        return list(self.tokenizer.extract_speech_token([(wav, 16000)])[0])


def official_token2wav(home: Path, ckpt_root: Path, device: str = "cpu"):
    """The official Token2Wav (flow + HiFT) over `ckpt_root/flow` and `ckpt_root/hift`, for cross-checks only."""
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    from utils.tts_model_util import Token2Wav
    from utils.yaml_util import load_flow_model

    with _cwd(ckpt_root.parent):  # the official HiFT loader opens 'ckpt/hift/hift.pt'
        flow = load_flow_model(str(ckpt_root / "flow" / "flow.pt"), str(ckpt_root / "flow" / "config.yaml"), device)
        return Token2Wav(flow, sample_rate=24000, device=device)
