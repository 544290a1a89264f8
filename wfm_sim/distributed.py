"""Data-parallel training under ``torchrun``: one loop for one CPU process or N GPUs.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``), ``distributed``
joins the process group — gloo on CPU, NCCL on CUDA, one GPU per process — and the trainers
wrap their objective in ``DistributedDataParallel``. Launched as a plain process it does
nothing: world size 1, rank 0, no process group, ``wrap`` returns the module itself.

Every rank draws the same *global* batch from the same seeded generator and keeps its own
equal slice (``shard``); each rank's loss is the mean over its slice and DDP averages the
gradients, so N processes take exactly the step one process takes on the whole batch (up to
float summation order). This needs per-sample normalisation layers (GroupNorm, LayerNorm),
never BatchNorm.

    dist = distributed(config.device)
    objective = dist.wrap(_Objective(model).to(dist.device))
    index = dist.shard(rng.integers(0, n, size=global_batch))
    ...
    if dist.is_main:
        save_training_state(...)
    dist.barrier()
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from wfm_sim.devices import resolve_device

_Batch = TypeVar("_Batch", np.ndarray, torch.Tensor)

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """Whether this process is one of a ``torchrun`` group (its rank variables are set)."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or not under ``torchrun``): the one that writes files.

    Read from the environment, so it holds before the group is joined and after it is left
    (for example in an entry point's work after training).
    """
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class Distributed:
    """This process's place in the data-parallel group (world size 1 outside ``torchrun``)."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes checkpoints, TensorBoard logs and progress bars."""
        return self.rank == 0

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` in ``DistributedDataParallel`` when there are several ranks, else itself.

        DDP averages gradients only for what goes through ``forward``: wrap a module whose
        ``forward`` computes the loss, and run one forward and one backward per step. Its
        weights are broadcast from rank 0 here. Keep optimising and saving the unwrapped module.
        """
        if self.world_size == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )

    def shard(self, batch: _Batch) -> _Batch:
        """This rank's slice (along dim 0) of a global batch every rank drew identically.

        The slices are equal, so the mean of the ranks' per-slice means is the global mean.
        """
        if len(batch) % self.world_size:
            raise ValueError(
                f"a global batch of {len(batch)} does not split evenly over {self.world_size} "
                f"processes; use a batch size that is a multiple of {self.world_size}"
            )
        size = len(batch) // self.world_size
        return batch[self.rank * size : (self.rank + 1) * size]

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``value`` (a new tensor, no gradient): a global count or total.

        A collective: every rank must call it at the same point.
        """
        total = value.detach().clone()
        if self.world_size > 1:
            torch_dist.all_reduce(total, op=torch_dist.ReduceOp.SUM)
        return total

    def all_reduce_mean(self, values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
        """The mean over ranks of each logged scalar, in one collective on every rank."""
        names = list(values)
        local = torch.tensor(
            [float(torch.as_tensor(values[name]).detach()) for name in names],
            dtype=torch.float64,
            device=self.device,
        )
        mean = self.all_reduce_sum(local) / self.world_size
        return dict(zip(names, mean.tolist(), strict=True))

    def barrier(self) -> None:
        """Wait for every rank (after rank 0 writes a file the others may read)."""
        if self.world_size > 1:
            torch_dist.barrier()


def distributed(device: str = "auto") -> Distributed:
    """This process's place in the ``torchrun`` group, joining it on the first call.

    ``device`` is resolved as ``resolve_device`` does; under ``torchrun`` a CUDA device becomes
    ``cuda:LOCAL_RANK``, one GPU per process, and the group's backend is NCCL (gloo on CPU).
    Outside ``torchrun`` this returns world size 1 and touches nothing.

    The group then lives until the process exits (it is left at exit), and later calls reuse
    it: torch names every new default group alike, so a rank that left and joined again could
    read the other ranks' addresses from the old group and hang or fail (seen with gloo: two
    ranks leaving and joining in a loop failed with "Connection reset by peer" within 20 rounds).
    """
    resolved = resolve_device(device)
    if not launched_by_torchrun():
        return Distributed(rank=0, local_rank=0, world_size=1, device=resolved)
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "gloo"
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
        backend = "nccl"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend=backend, device_id=resolved if resolved.type == "cuda" else None
        )
        atexit.register(_leave_group)
    elif backend not in str(torch_dist.get_backend()):
        raise RuntimeError(
            f"this process already joined a {torch_dist.get_backend()} group; a {resolved} "
            f"trainer needs {backend}: run trainers of one device type per torchrun launch"
        )
    return Distributed(
        rank=torch_dist.get_rank(),
        local_rank=local_rank,
        world_size=torch_dist.get_world_size(),
        device=resolved,
    )


def _leave_group() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


__all__ = ["Distributed", "distributed", "is_main_process", "launched_by_torchrun"]
