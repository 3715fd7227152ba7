"""How much memory the planner may fill: free CUDA memory after the weights, or a share of RAM."""

from __future__ import annotations

import math

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
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        if not weights_loaded:
            free -= cost.weights_bytes
        return max(0, math.floor((free - (reserve or 0)) * CUDA_SAFETY))
    return math.floor(available_ram() * CPU_SHARE)
