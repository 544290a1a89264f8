"""Device selection shared by training and inference."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """Return ``cuda`` when asked for ``auto`` and a GPU is present, else the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
