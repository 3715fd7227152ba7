"""Where GLM-TTS's files are found in a user's install.

The hub repository zai-org/GLM-TTS (what `batchtts download` fetches) is the official `ckpt/` folder. The CAM++
speaker encoder, `campplus.onnx`, is not in it: the official script opens `frontend/campplus.onnx` relative to
its GitHub checkout, where the file is committed (git blob CAMPPLUS_BLOB at commit GITHUB_COMMIT).
`batchtts download` fetches that file into `<model folder>/frontend/campplus.onnx` and checks its git blob id;
a user may also point GLMTTS_CAMPPLUS at a copy, or keep a checkout in GLMTTS_HOME.

Every download goes through the hub endpoint the model came from (`--endpoint`, HF_ENDPOINT, recorded in the
download lock), so a user behind a mirror never needs GitHub: the same CAM++ export (3D-Speaker's model as
CosyVoice exported it) is published in CosyVoice's hub repository (CAMPPLUS_HUB_REPO). The hub copy is saved only
when its git blob id is the pinned CAMPPLUS_BLOB; GitHub is tried only when the hub copy is absent or differs.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from batchtts import config
from batchtts.errors import EnvironmentProblem
from batchtts.state.atomic import atomic_write_bytes

GITHUB_COMMIT = "c5dc7aecc3b4032032d631b271e767893984f821"
CAMPPLUS_BLOB = "d0678e51f871c8365a1bf60606f6358619af4cb6"  # git's id of frontend/campplus.onnx at that commit
CAMPPLUS_URL = f"https://raw.githubusercontent.com/zai-org/GLM-TTS/{GITHUB_COMMIT}/frontend/campplus.onnx"
CAMPPLUS_REL = Path("frontend") / "campplus.onnx"
CAMPPLUS_HUB_REPO = "FunAudioLLM/CosyVoice2-0.5B"  # holds campplus.onnx at its root
CAMPPLUS_HUB_FILE = "campplus.onnx"


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
        f"repository: run `batchtts download` again (it fetches {CAMPPLUS_HUB_REPO}'s copy through the hub, else "
        f"{CAMPPLUS_URL}), pass --campplus-url URL, or set {config.GLMTTS_CAMPPLUS} to a campplus.onnx"
    )


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the hub, GitHub or the user's URL
        return response.read()


def _how_to_get(target: Path) -> str:
    return (
        f"download campplus.onnx by hand into {target}, or pass --campplus-url URL, or set "
        f"{config.GLMTTS_CAMPPLUS} to a copy"
    )


def fetch_campplus(
    model_folder: Path, url: str | None = None, timeout: float = 60.0, endpoint: str | None = None
) -> tuple[Path, bool]:
    """Put campplus.onnx into the model folder unless it is there; returns (path, fetched). Without `url`: first
    CAMPPLUS_HUB_REPO through the hub `endpoint` (a mirror), then the pinned GitHub file when the hub copy is
    absent or not the pinned one; either is saved only when its git blob id is CAMPPLUS_BLOB."""
    target = Path(model_folder) / CAMPPLUS_REL
    if target.is_file():
        return target, False
    if url:
        try:
            data = _get(url, timeout)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot fetch the CAM++ speaker model from {url} ({exc}); {_how_to_get(target)}"
            ) from None
        atomic_write_bytes(target, data)
        return target, True
    tried = []
    if endpoint:
        hub_url = f"{endpoint.rstrip('/')}/{CAMPPLUS_HUB_REPO}/resolve/main/{CAMPPLUS_HUB_FILE}"
        try:
            data = _get(hub_url, timeout)
            if git_blob_id(data) == CAMPPLUS_BLOB:
                atomic_write_bytes(target, data)
                return target, True
            tried.append(f"{hub_url} is not the pinned file (git blob {CAMPPLUS_BLOB})")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise EnvironmentProblem(f"cannot fetch {hub_url} ({exc}); {_how_to_get(target)}") from None
            tried.append(f"{hub_url}: not found")
        except OSError as exc:
            raise EnvironmentProblem(f"cannot fetch {hub_url} ({exc}); {_how_to_get(target)}") from None
    try:
        data = _get(CAMPPLUS_URL, timeout)
    except OSError as exc:
        tried.append(f"{CAMPPLUS_URL}: {exc}")
        raise EnvironmentProblem(
            f"cannot fetch the CAM++ speaker model ({'; '.join(tried)}); {_how_to_get(target)}"
        ) from None
    if git_blob_id(data) != CAMPPLUS_BLOB:
        raise EnvironmentProblem(
            f"{CAMPPLUS_URL} is not the pinned campplus.onnx (git blob {CAMPPLUS_BLOB}); not saved"
        )
    atomic_write_bytes(target, data)
    return target, True


def campplus_after_download(repo: str, folder: Path, url: str | None) -> str | None:
    """`batchtts download`'s second step for GLM-TTS: the speaker model beside the hub files, through the same hub
    endpoint (the download lock records it). `url` '' skips it; offline, an absent file is left for later.
    Returns a line to print, or None."""
    from batchtts.engines.download import DEFAULT_REPO, ModelLock, offline, resolve_endpoint

    if repo != DEFAULT_REPO or url == "" or (offline() and url is None):
        return None
    lock = ModelLock.read(folder)
    endpoint = lock.endpoint if lock and lock.endpoint.startswith("http") else resolve_endpoint(None)
    path, fetched = fetch_campplus(folder, url or None, endpoint=endpoint)
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
