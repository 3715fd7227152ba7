"""GLM-TTS's LLM stage: fused Llama, slot KV cache decode, sampling, capacity."""
