"""How much memory the planner may fill: free CUDA memory after the weights, or a share of RAM."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type: the engines themselves ask this module for free RAM
    from batchtts.engines.base import CostModel

CPU_SHARE = 0.5  # of available RAM, when the user sets no budget on a CPU
CUDA_SAFETY = 0.9  # of free device memory left after weights and the activation reserve


def available_ram() -> int:
    """MemAvailable from /proc/meminfo (what can be used without swapping), else physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


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
        if not weights_loaded:  # nor the ASR model that verifies takes beside it (CostModel.asr_reserve_bytes)
            free -= cost.weights_bytes + cost.asr_reserve_bytes
        return max(0, math.floor((free - (reserve or 0)) * CUDA_SAFETY))
    return math.floor(available_ram() * CPU_SHARE)
