"""Resumable training state in safetensors: weights, optimizer moments and the step, one file.

Nothing is pickled, so resuming from a file runs no code from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from wfm_sim.io import atomic_path

EXPORT_DTYPES = ("float32", "float16", "bfloat16")
"""dtypes a trainer may export weights as (float16 halves a checkpoint committed to a zoo)."""


def require_export_dtype(name: str) -> None:
    """Refuse a ``weights_dtype`` setting that is not one of ``EXPORT_DTYPES``, by name."""
    if name not in EXPORT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(EXPORT_DTYPES)}, got {name!r}")


def save_training_state(
    path: str | Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    schedule: dict[str, Any] | None = None,
) -> None:
    """Write module weights, optimizer state and ``step`` to ``path`` atomically.

    ``schedule`` (e.g. the total step count) is stored so that a resume under another schedule,
    which would silently train something else, is refused.
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    optim = optimizer.state_dict()
    for index, slots in optim["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    metadata = {
        "step": str(step),
        "param_groups": json.dumps(optim["param_groups"]),
        "schedule": json.dumps(schedule or {}, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_training_state(
    path: str | Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: dict[str, Any] | None = None,
) -> int:
    """Restore ``module`` and ``optimizer`` from ``path``; return the step it was saved at.

    Raises ``ValueError`` when the state was saved under another ``schedule``.
    """
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        module.load_state_dict(model_state)
    except RuntimeError as error:
        raise ValueError(
            f"training state {path} belongs to a model of another config; delete it or use "
            f"another run_dir: {error}"
        ) from error
    saved_schedule = json.loads(metadata.get("schedule", "{}"))
    if saved_schedule != (schedule or {}):
        raise ValueError(
            f"training state {path} was saved under schedule {saved_schedule}, not "
            f"{schedule or {}}; resume with the same settings or use a new run_dir"
        )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": state, "param_groups": json.loads(metadata["param_groups"])}
    )
    return int(metadata["step"])
