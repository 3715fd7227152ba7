"""Output formats batchtts writes, by file suffix (shared by job validation and encoding)."""

OUTPUT_FORMATS = {
    ".wav": "wav",
    ".flac": "flac",
    ".mp3": "mp3",
    ".ogg": "opus",
    ".opus": "opus",
    ".m4a": "aac",
    ".m4b": "aac",
}
