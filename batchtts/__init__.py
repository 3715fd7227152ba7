"""batchtts: long-form text to chapter audio, batched and resumable."""

__version__ = "0.1.0"
