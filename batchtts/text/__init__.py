"""Text to chunks: sentences and breaks, an engine's chunk rule, chunk keys."""
