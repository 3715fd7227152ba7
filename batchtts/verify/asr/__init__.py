"""ASR backends, found by name like engines: built-ins here, others through the `batchtts.asr` entry point."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchtts.verify.asr.base import AsrBackend

_BUILTIN = {
    "pocketsphinx": "batchtts.verify.asr.pocketsphinx:PocketsphinxBackend",
    "whisper": "batchtts.verify.asr.whisper:WhisperBackend",
}
_registered: dict[str, type[AsrBackend]] = {}


def register_backend(cls: type[AsrBackend]) -> None:
    """Make an ASR backend class available by its `name` in this process (plug-ins and tests)."""
    _registered[cls.name] = cls


def backend_names() -> list[str]:
    return sorted({*_BUILTIN, *(ep.name for ep in entry_points(group="batchtts.asr")), *_registered})


def backend_class(name: str) -> type[AsrBackend]:
    """The backend class called `name`; KeyError if there is none."""
    if name in _registered:
        return _registered[name]
    target = _BUILTIN.get(name) or {ep.name: ep.value for ep in entry_points(group="batchtts.asr")}.get(name)
    if target is None:
        raise KeyError(name)
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
