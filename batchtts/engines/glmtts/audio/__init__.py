"""GLM-TTS's audio stages: flow matching (DiT) and the HiFT vocoder, batched."""
