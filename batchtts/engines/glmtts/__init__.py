"""GLM-TTS: a Llama LLM that emits speech tokens, then flow matching and a vocoder (zero-shot cloning)."""

from batchtts.engines.glmtts.engine import TOKENS_PER_SECOND, GlmttsEngine, llm_cost, read_llm_config

__all__ = ["TOKENS_PER_SECOND", "GlmttsEngine", "llm_cost", "read_llm_config"]
