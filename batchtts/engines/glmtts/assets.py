"""Where GLM-TTS's files are found in a user's install.

The hub repository zai-org/GLM-TTS (what `batchtts download` fetches) is the official `ckpt/` folder. The CAM++
speaker encoder, `campplus.onnx`, is not in it: the official script opens `frontend/campplus.onnx` relative to
its GitHub checkout, where the file is committed (git blob CAMPPLUS_BLOB at commit GITHUB_COMMIT).
`batchtts download` fetches that file into `<model folder>/frontend/campplus.onnx` and checks its git blob id;
a user may also point GLMTTS_CAMPPLUS at a copy, or keep a checkout in GLMTTS_HOME.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from batchtts import config
from batchtts.errors import EnvironmentProblem
from batchtts.state.atomic import atomic_write_bytes

GITHUB_COMMIT = "c5dc7aecc3b4032032d631b271e767893984f821"
CAMPPLUS_BLOB = "d0678e51f871c8365a1bf60606f6358619af4cb6"  # git's id of frontend/campplus.onnx at that commit
CAMPPLUS_URL = f"https://raw.githubusercontent.com/zai-org/GLM-TTS/{GITHUB_COMMIT}/frontend/campplus.onnx"
CAMPPLUS_REL = Path("frontend") / "campplus.onnx"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def campplus_candidates(model_folder: Path) -> list[Path]:
    named, home = config.glmtts_campplus(), config.glmtts_home()
    return [
        *([named] if named else []),
        model_folder / CAMPPLUS_REL,
        model_folder / "campplus.onnx",
        *([home / CAMPPLUS_REL] if home else []),
    ]


def campplus_path(model_folder: Path) -> Path:
    for path in campplus_candidates(model_folder):
        if path.is_file():
            return path
    raise EnvironmentProblem(
        f"the CAM++ speaker model is missing ({model_folder / CAMPPLUS_REL}); it is not in the GLM-TTS hub "
        f"repository but in its GitHub repository: run `batchtts download` again (it fetches {CAMPPLUS_URL}), "
        f"or set {config.GLMTTS_CAMPPLUS} to a campplus.onnx"
    )


def fetch_campplus(model_folder: Path, url: str | None = None, timeout: float = 60.0) -> tuple[Path, bool]:
    """Put campplus.onnx into the model folder unless it is there; returns (path, fetched). Only the pinned
    GitHub file is accepted from the default URL (its git blob id is checked)."""
    target = Path(model_folder) / CAMPPLUS_REL
    if target.is_file():
        return target, False
    source = url or CAMPPLUS_URL
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310 - a fixed https URL or the user's
            data = response.read()
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot fetch the CAM++ speaker model from {source} ({exc}); download it by hand into {target} "
            f"or set {config.GLMTTS_CAMPPLUS}"
        ) from None
    if url is None and git_blob_id(data) != CAMPPLUS_BLOB:
        raise EnvironmentProblem(f"{source} is not the pinned campplus.onnx (git blob {CAMPPLUS_BLOB}); not saved")
    atomic_write_bytes(target, data)
    return target, True


def campplus_after_download(repo: str, folder: Path, url: str | None) -> str | None:
    """`batchtts download`'s second step for GLM-TTS: the speaker model beside the hub files. `url` '' skips it;
    offline, an absent file is left for later. Returns a line to print, or None."""
    from batchtts.engines.download import DEFAULT_REPO, offline

    if repo != DEFAULT_REPO or url == "" or (offline() and url is None):
        return None
    path, fetched = fetch_campplus(folder, url or None)
    return f"CAM++ speaker model: {path}" + (" (fetched)\n" if fetched else "\n")


def load_state_dict(path: Path, device: str = "cpu") -> dict:
    """A `.pt` state dict (flow/flow.pt, hift/hift.pt) under torch's safe loader (`weights_only=True`, the
    default from torch 2.6). The official loaders accept a plain state dict or one under "model"; both are
    tensors in (Ordered)dicts, which the safe loader reads. Anything else is refused with the class named,
    never unpickled."""
    import pickle

    import torch

    try:
        obj = torch.load(Path(path), map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = str(exc).split("Unsupported global:")[-1].split(" was not")[0].strip() or "an object"
        raise EnvironmentProblem(f"{path} holds more than tensors ({refused}); refusing to unpickle it") from None
    except (OSError, RuntimeError) as exc:
        raise EnvironmentProblem(f"cannot read {path}: {exc}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EnvironmentProblem(f"{path} is not a state dict of tensors")
    return dict(obj)
