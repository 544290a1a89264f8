"""What every benchmark records beside its numbers: the machine and the code version."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import world_models
from envs.core import WorldModelCore
from wfm_sim.io import write_json_atomic

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def machine_facts() -> dict[str, Any]:
    """CPU count, torch threads, device and the git commit the numbers came from."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
        "commit": commit or "unknown",
        "date": time.strftime("%Y-%m-%d"),
    }


def paired_gain(returns: list[float], baseline: list[float]) -> dict[str, Any]:
    """Start-by-start difference of two planners' returns on the same starts: its mean, the
    mean's standard error, and on how many starts each did better."""
    if len(returns) != len(baseline) or len(returns) < 2:
        raise ValueError(
            f"{len(returns)} returns against {len(baseline)}: pair them on the same starts"
        )
    gain = np.asarray(returns) - np.asarray(baseline)
    return {
        "mean": float(gain.mean()),
        "sem": float(gain.std(ddof=1) / np.sqrt(len(gain))),
        "better": int((gain > 0).sum()),
        "worse": int((gain < 0).sum()),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus machine facts to experiments/results/<name>.json."""
    path = RESULTS_DIR / f"{name}.json"
    write_json_atomic(path, {"benchmark": name, "machine": machine_facts(), **payload})
    return path


def batched_steps_per_second(batch: int, steps: int, device: str) -> float:
    """Imagined steps per second of the committed driving model's ``WorldModelCore`` at
    ``batch`` environments, random actions, on ``device``."""
    model = world_models.load("driving", device=device)
    core = WorldModelCore(model, batch_size=batch)
    frames, actions = world_models.load_start_contexts(world_models.checkpoint_path("driving"))
    members = torch.arange(batch) % len(frames)
    core.reset(frames[members], actions[members])
    generator = torch.Generator().manual_seed(0)
    core.step(torch.randint(0, 5, (batch,), generator=generator))  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        core.step(torch.randint(0, 5, (batch,), generator=generator))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)
