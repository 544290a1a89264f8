"""Learning-rate schedules shared by the project's training loops."""

from __future__ import annotations

import numpy as np


def warmup_cosine_lr(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5% of ``total`` steps, then cosine decay to 5% of ``peak``."""
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return float(peak * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress))))
