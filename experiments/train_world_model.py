"""Train a world model on recorded footage and export it with a model card.

    python -m experiments.train_world_model                 # into world_models/zoo/driving
    python -m experiments.train_world_model export_dir=runs/my_model dynamics_steps=500
    python -m experiments.train_world_model --config-name train_world_model_robot

Interrupted runs resume from ``run_dir``. TensorBoard logs: ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import to_dataclass
from experiments.model_card import write_model_card
from wfm_sim.training import TrainConfig, train_world_model


@hydra.main(version_base=None, config_path="conf", config_name="train_world_model")
def main(cfg: DictConfig) -> None:
    """Train, export, measure on held-out footage and write MODEL_CARD.md."""
    config = to_dataclass(cfg, TrainConfig)
    export_dir = train_world_model(config)
    card = write_model_card(export_dir, config.footage_dir, str(HydraConfig.get().job.config_name))
    print(f"world model in {export_dir}; model card {card}")


if __name__ == "__main__":
    main()
