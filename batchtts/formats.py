"""Output formats batchtts writes, by file suffix (shared by job validation and stitching)."""

OUTPUT_FORMATS = {".wav": "wav", ".flac": "flac", ".mp3": "mp3"}
