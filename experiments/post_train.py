"""Post-train a pre-trained WFM on actions: the diffusion or autoregressive backend of
WFM-Driving-v0, with its reward and termination head.

    python -m experiments.post_train                                   # diffusion, pre-trained
    python -m experiments.post_train --config-name post_train_autoregressive
    python -m experiments.post_train init=scratch run_dir=runs/post_train/driving_diffusion_scratch
    torchrun --standalone --nproc_per_node=2 -m experiments.post_train   # data-parallel (DDP)

Needs the pre-trained checkpoint (``make train-diffusion`` / ``make train-autoregressive``;
``pretrained``), its tokenizer (``tokenizer_dir``) and the raw footage (``make record``).
Interrupted runs resume from ``run_dir``; TensorBoard logs: ``tensorboard --logdir
runs/post_train``. The export backs ``gym.make("WFM-Driving-v0", backend=...)``.
"""

from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.config import to_dataclass
from wfm_sim.distributed import is_main_process
from wfm_sim.training.post_training import PostTrainConfig, post_train

ConfigStore.instance().store(name="post_train_schema", node=PostTrainConfig)


@hydra.main(version_base=None, config_path="conf", config_name="post_train")
def main(cfg: DictConfig) -> None:
    """Post-train (or resume), export, and print where the checkpoint is."""
    config = to_dataclass(cfg, PostTrainConfig)
    folder = post_train(config)
    if is_main_process():
        report = json.loads((folder / "training.json").read_text())
        print(
            f"{config.backend} ({config.init}) post-trained {report['steps']} steps on "
            f"{report['frames']['train']} frames: {folder}"
        )


if __name__ == "__main__":
    main()
