"""The embedded default engine: piper's VITS voice shipped in a wheel, espeak-ng phonemes, CPU only."""

from batchtts.engines.embedded.engine import EmbeddedEngine

__all__ = ["EmbeddedEngine"]
