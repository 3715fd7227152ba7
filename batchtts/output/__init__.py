"""Chunks to files: stitching, loudness, encoding, subtitles, books."""
