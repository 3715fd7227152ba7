"""The official GLM-TTS modules, imported from a checkout named by `GLMTTS_HOME`, for cross-checks only
(the tests marked `official`): batchtts runs its own speech tokenizer, flow and vocoder, which load the
official weights unchanged, so no checkout is needed to synthesise. Nothing here is copied into batchtts."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from batchtts import config
from batchtts.errors import EnvironmentProblem


@contextlib.contextmanager
def _cwd(model_dir: Path):
    """The official loaders open 'ckpt/...' relative to the working directory; the model folder IS that
    ckpt/ folder (the hub layout), so they run in a temporary folder whose `ckpt` links to it."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="batchtts-glmtts-") as tmp:
        (Path(tmp) / "ckpt").symlink_to(Path(model_dir).resolve(), target_is_directory=True)
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def glmtts_home() -> Path:
    home = config.glmtts_home()
    if home is None:
        raise EnvironmentProblem(
            "the official cross-check needs GLM-TTS's code: clone https://github.com/zai-org/GLM-TTS, install its "
            "requirements, and set GLMTTS_HOME to the checkout"
        )
    if not (home / "utils" / "tts_model_util.py").is_file():
        raise EnvironmentProblem(f"{home} is not a GLM-TTS checkout (no utils/tts_model_util.py); check GLMTTS_HOME")
    return home


def official_token2wav(home: Path, ckpt_root: Path, device: str = "cpu"):
    """The official Token2Wav (flow + HiFT) over `ckpt_root/flow` and `ckpt_root/hift`."""
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    from utils.tts_model_util import Token2Wav
    from utils.yaml_util import load_flow_model

    with _cwd(ckpt_root):  # the official HiFT loader opens 'ckpt/hift/hift.pt'
        flow = load_flow_model(str(ckpt_root / "flow" / "flow.pt"), str(ckpt_root / "flow" / "config.yaml"), device)
        return Token2Wav(flow, sample_rate=24000, device=device)
