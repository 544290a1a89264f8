"""One process of the data-parallel test run: train a world model, then a tokenizer.

Launched by ``tests/training/test_distributed.py`` as

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/training/ddp_worker.py WORLD_MODEL.json TOKENIZER.json

with the two trainers' configs as JSON (``dataclasses.asdict``), read back as the Hydra entry
points read theirs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf

from experiments.config import to_dataclass
from wfm_sim.tokenizer.training import TokenizerTrainConfig, train_tokenizer
from wfm_sim.training import TrainConfig, train_world_model

T = TypeVar("T")


def read_config(path: str | Path, schema: type[T]) -> T:
    """The ``schema`` dataclass written as JSON at ``path``."""
    return to_dataclass(OmegaConf.create(json.loads(Path(path).read_text())), schema)


def main(world_model_json: str, tokenizer_json: str) -> None:
    """Run both trainers in this process, one after the other."""
    train_world_model(read_config(world_model_json, TrainConfig))
    train_tokenizer(read_config(tokenizer_json, TokenizerTrainConfig))


if __name__ == "__main__":
    main(*sys.argv[1:])
