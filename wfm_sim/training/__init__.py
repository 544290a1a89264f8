"""Training loops that turn footage into world models (``train_world_model``)."""

from wfm_sim.training.world_model import TrainConfig, train_world_model

__all__ = ["TrainConfig", "train_world_model"]
