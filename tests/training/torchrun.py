"""What the data-parallel tests share: launching a Hydra entry point as two ``torchrun`` CPU
processes (gloo), and comparing the weights they trained with one process's."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

# Two ranks sum their half-batch gradients in another order than one process sums the whole
# batch: the gradients agree to ~1e-6 relative (1e-4 for a bias summed over every pixel), not
# bit for bit. AdamW divides each gradient by its own running size, which magnifies that
# rounding for the few weights whose gradient is near zero (measured: up to 6e-5 after the
# world model's 3 + 3 + 3 steps at lr 1e-3), so a per-weight tolerance would have to sit close
# to a real step. The whole difference measured against how far training moved the weights
# separates cleanly: measured 4e-5 (world model) and 4e-6 (tokenizer), while a world model
# trained on half of each batch (what ranks that do not average their gradients would do) is
# 0.2 away from the full-batch one.
RELATIVE_GAP = 1e-3


def hydra_overrides(config: object, groups: Iterable[str] = ()) -> list[str]:
    """Hydra command-line overrides that rebuild the dataclass ``config``: its plain fields,
    and each field of the nested dataclasses named in ``groups`` (other dict fields are left
    at the entry point's defaults)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list | tuple):
            return "[" + ",".join(map(str, v)) + "]"
        return str(v)

    fields = dataclasses.asdict(config)  # type: ignore[call-overload]
    plain = [f"{k}={value(v)}" for k, v in fields.items() if not isinstance(v, dict)]
    nested = [f"{group}.{k}={value(v)}" for group in groups for k, v in fields[group].items()]
    return plain + nested


def run_torchrun(*arguments: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 arguments...`` (a script or ``-m module``,
    and its arguments) from the repository root, one thread per process."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        *arguments,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def relative_gap(
    single: Mapping[str, torch.Tensor],
    parallel: Mapping[str, torch.Tensor],
    init: Mapping[str, torch.Tensor],
) -> float:
    """|single - parallel| / |single - init| over the weights named in ``init``."""

    def flat(weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([weights[k].double().flatten() for k in sorted(init)])

    moved = (flat(single) - flat(init)).norm()
    assert moved > 0, "training did not move the weights"
    return float((flat(single) - flat(parallel)).norm() / moved)
