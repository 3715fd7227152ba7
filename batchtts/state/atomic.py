"""All-or-nothing file writes: a kill at any instant leaves the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from batchtts.state.interrupt import temporary


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()  # mkstemp makes 0600 files; outputs should get the usual permissions

# Temp files are named `.batchtts-tmp-<8 random>-<name>`: a prefix no other tool uses, so cleaning after a
# killed run can never touch a user's or another program's temp file (Syncthing's `.syncthing.x.tmp`).
TEMP_PREFIX = ".batchtts-tmp-"
_TEMP_RE = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]{8}-.*", re.DOTALL)
_NAME_KEEP = 120  # characters of the destination's name kept in the temp name (NAME_MAX is 255 bytes)


def temp_name_for(dest: Path) -> tuple[str, str]:
    """(prefix, suffix) for mkstemp: our prefix, then the destination's name, so its suffix (format) stays."""
    name = dest.name
    if len(name.encode()) > _NAME_KEEP:
        stem = dest.stem.encode()[: _NAME_KEEP - len(dest.suffix.encode())].decode(errors="ignore")
        name = stem + dest.suffix
    return TEMP_PREFIX, f"-{name}"


def is_temp_name(name: str) -> bool:
    """True only for names `atomic_path` (or `temp_name_for`) made."""
    return _TEMP_RE.fullmatch(name) is not None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success fsync it and rename it over `dest`.

    The temp file keeps `dest`'s suffix so writers that pick a format by suffix still work.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = temp_name_for(dest)
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with temporary(tmp):  # removed even if a second signal stops the process mid-write
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def remove_stale_temps(folder: Path, recursive: bool = False) -> int:
    """Delete temp files a killed batchtts writer left in `folder` (call only while holding the output lock).

    Only names batchtts made are removed, only regular files, and links are never followed into other folders.
    """
    removed = 0
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return 0
    for tmp in folder.rglob(TEMP_PREFIX + "*") if recursive else folder.glob(TEMP_PREFIX + "*"):
        if not is_temp_name(tmp.name) or tmp.is_symlink() or not tmp.is_file():
            continue
        if recursive and any((folder / p).is_symlink() for p in tmp.relative_to(folder).parents):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:  # a failed close() carries no file name; the error should say which file
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(dest)) from None
            raise
