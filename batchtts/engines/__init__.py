"""Engine plug-ins, found by name: built-ins here, others through the `batchtts.engines` entry point."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchtts.engines.base import Engine

DEFAULT_ENGINE = "embedded"
_BUILTIN = {
    "embedded": "batchtts.engines.embedded:EmbeddedEngine",
    "glmtts": "batchtts.engines.glmtts:GlmttsEngine",
}
_registered: dict[str, type[Engine]] = {}


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="batchtts.engines")}


def engine_names() -> list[str]:
    return sorted({*_BUILTIN, *_plugins(), *_registered})


def register_engine(cls: type[Engine]) -> None:
    """Make an engine class available by its `name` in this process (plug-ins and tests)."""
    _registered[cls.name] = cls


def engine_class(name: str) -> type[Engine]:
    if name in _registered:
        return _registered[name]
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise KeyError(name)
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
