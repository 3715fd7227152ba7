"""Fetch model weights from the Hugging Face hub or a mirror, once, pinned to a commit.

The endpoint is `--endpoint`, else `HF_ENDPOINT` (so `HF_ENDPOINT=https://hf-mirror.com` just works),
else the hub. A complete local copy (every file of the pinned commit present at its recorded size) is
reused without any network call, and `HF_HUB_OFFLINE=1` never touches the network. Interrupted
downloads resume (huggingface_hub keeps partial files under `<local-dir>/.cache/huggingface`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from batchtts import config
from batchtts.errors import EnvironmentProblem
from batchtts.state.atomic import atomic_write_bytes

DEFAULT_REPO = "zai-org/GLM-TTS"
DEFAULT_ENDPOINT = "https://huggingface.co"
LOCK_NAME = "batchtts-model.lock.json"


@dataclass(frozen=True)
class ModelLock:
    repo: str
    revision: str  # what was asked for (branch, tag or commit)
    commit: str  # what it resolved to: part of every chunk key made with this model
    endpoint: str
    files: dict[str, int]  # path -> size in bytes

    @classmethod
    def read(cls, local_dir: Path) -> ModelLock | None:
        try:
            return cls(**json.loads((Path(local_dir) / LOCK_NAME).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, local_dir: Path) -> None:
        atomic_write_bytes(Path(local_dir) / LOCK_NAME, json.dumps(self.__dict__, indent=1, sort_keys=True).encode())

    def missing(self, local_dir: Path) -> list[str]:
        """Files absent or of the wrong size: an incomplete copy."""
        out = []
        for name, size in self.files.items():
            path = Path(local_dir) / name
            if not path.is_file() or (size is not None and path.stat().st_size != size):
                out.append(name)
        return out


def offline() -> bool:
    return config.hf_offline()


def resolve_endpoint(endpoint: str | None) -> str:
    return (endpoint or config.hf_endpoint() or DEFAULT_ENDPOINT).rstrip("/")


def _unreachable(endpoint: str, exc: Exception) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"cannot reach the model hub at {endpoint} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
        "behind a slow or blocked link use a mirror: HF_ENDPOINT=https://hf-mirror.com batchtts download "
        "(or --endpoint URL), or copy a downloaded folder here and set HF_HUB_OFFLINE=1"
    )


@dataclass(frozen=True)
class Downloaded:
    """What `batchtts download` got: the model folder, its pin, and whether anything was fetched."""

    folder: Path
    lock: ModelLock
    fetched: bool  # False: a complete copy was reused without any network call
    notes: tuple[str, ...] = ()  # what else the engine fetched beside the hub files

    @property
    def lock_path(self) -> Path:
        return self.folder / LOCK_NAME


def download(
    repo: str = DEFAULT_REPO,
    revision: str = "main",
    local_dir: Path | None = None,
    endpoint: str | None = None,
    max_workers: int = 8,
) -> tuple[Path, ModelLock, bool]:
    """Returns (folder, lock, fetched): `fetched` is False when a complete copy was reused."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    local_dir = Path(local_dir or Path("models") / repo.split("/")[-1]).resolve()
    lock = ModelLock.read(local_dir)
    if lock and lock.repo == repo and revision in (lock.revision, lock.commit) and not lock.missing(local_dir):
        return local_dir, lock, False
    endpoint = resolve_endpoint(endpoint)
    if offline():
        why = (
            "has no complete copy" if lock is None else f"is incomplete ({len(lock.missing(local_dir))} files missing)"
        )
        raise EnvironmentProblem(
            f"HF_HUB_OFFLINE is set and {local_dir} {why}; download it first, without "
            "HF_HUB_OFFLINE, or copy a complete folder there"
        )
    api = HfApi(endpoint=endpoint)
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
        commit = info.sha
        files = {s.rfilename: s.size for s in info.siblings or []}
        snapshot_download(repo, revision=commit, local_dir=local_dir, endpoint=endpoint, max_workers=max_workers)
    except RevisionNotFoundError:
        raise EnvironmentProblem(f"{repo} has no revision '{revision}' at {endpoint}") from None
    except RepositoryNotFoundError:
        raise EnvironmentProblem(f"{repo} was not found at {endpoint} (a typo, or a mirror without it?)") from None
    except EnvironmentProblem:
        raise
    except Exception as exc:  # connection refused, DNS, timeouts, HTTP 5xx: all mean "cannot get it from here"
        raise _unreachable(endpoint, exc) from None
    lock = ModelLock(repo, revision, commit, endpoint, files)
    incomplete = lock.missing(local_dir)
    if incomplete:
        raise EnvironmentProblem(
            f"download from {endpoint} is incomplete: {', '.join(incomplete[:5])}; run it again to resume"
        )
    lock.write(local_dir)
    return local_dir, lock, True
