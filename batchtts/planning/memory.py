"""How much memory the planner may fill: free CUDA memory after the weights, or a share of RAM.

The one owner of the KV budget: `batchtts plan` and a run's worker both call `memory_budget`, and the
worker hands the result to the engine (`Engine.use_memory_budget`), whose decoder sizes its cache from it
(GLM-TTS: llm/capacity.py's `slot_capacity`). `BATCHTTS_FREE_MEMORY` forces the free-memory figure (the
memory free before weights load) for both.
"""

from __future__ import annotations

import math

from batchtts import config
from batchtts.engines.base import CostModel, available_ram

CPU_SHARE = 0.5  # of available RAM, when the user sets no budget on a CPU
CUDA_SAFETY = 0.9  # of free device memory left after weights and the activation reserve


def memory_budget(
    device: str,
    cost: CostModel,
    user_budget: int | None = None,
    reserve: int | None = None,
    weights_loaded: bool = False,
) -> int:
    """Bytes the planner may fill with per-sequence state.

    On CUDA: free device memory (after the weights, or minus their size when not yet loaded), minus the
    measured activation reserve, times a safety margin. On a CPU: a share of available RAM.
    """
    if user_budget is not None:
        return user_budget
    forced = config.free_memory()
    if forced is not None:
        free = forced - (cost.weights_bytes if device == "cuda" else 0)
        if device == "cuda":
            return max(0, math.floor((free - (reserve or 0)) * CUDA_SAFETY))
        return math.floor(free * CPU_SHARE)
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        if not weights_loaded:  # nor the ASR model that verifies takes beside it (CostModel.asr_reserve_bytes)
            free -= cost.weights_bytes + cost.asr_reserve_bytes
        return max(0, math.floor((free - (reserve or 0)) * CUDA_SAFETY))
    return math.floor(available_ram() * CPU_SHARE)
