"""GLM-TTS voice preparation: speech tokens, prompt mel, speaker embedding."""
