"""Robot footage through the driving curation and trainers, by config only: the shipped
``curate_robot.yaml`` splits Pusher footage into episodes, captions them from the arm, puck and
goal, shards them; a video tokenizer and a world model train from the shards, the world model
into a WFM-Robot-v0 env."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize

import envs
import experiments.curate  # noqa: F401  (registers the curation schema)
from experiments.config import to_dataclass
from tests.robot.conftest import tiny_robot_model
from wfm_sim.curation.pipeline import CurationConfig, CurationResult, curate
from wfm_sim.data.shards import read_catalog, read_shard_episodes
from wfm_sim.tokenizer import VideoTokenizerConfig
from wfm_sim.tokenizer.training import TokenizerTrainConfig, train_tokenizer
from wfm_sim.training import TrainConfig, train_world_model


@pytest.fixture(scope="module")
def curated_robot(robot_footage: Path, tmp_path_factory: pytest.TempPathFactory) -> CurationResult:
    work = tmp_path_factory.mktemp("curated_robot")
    overrides = [
        f"footage_dirs=[{robot_footage}]",
        f"work_dir={work}",
        "clip_batch=2",
        "device=cpu",
        "threads=1",
        "encoder_holdout_fraction=0.0",
        "encoder_training.steps=3",
        "encoder_training.batch_size=4",
        "encoder_training.progress=false",
        "encoder_training.threads=1",
        "encoder_training.encoder.frames=4",
        "encoder_training.encoder.size=32",
        "encoder_training.encoder.channels=[8,16]",
        "encoder_training.encoder.frame_dim=32",
        "dedup.epsilon=0.0",
    ]
    with initialize(version_base=None, config_path="../../experiments/conf"):
        config = to_dataclass(compose("curate_robot", overrides=overrides), CurationConfig)
    return curate(config, progress=False)


def test_robot_episodes_become_whole_captioned_clips(curated_robot: CurationResult) -> None:
    summary = curated_robot.summary
    # 3 episodes of 101 frames in 2 parts: one true cut, found from the pixels
    assert summary["split"]["cuts"]["recall"] == 1.0
    assert summary["split"]["cuts"]["precision"] == 1.0
    catalog = read_catalog(curated_robot.shards_dir).to_pandas()
    assert sorted((catalog["end"] - catalog["start"]).tolist()) == [101, 101, 101]
    assert catalog["drop_reason"].isna().all(), "the still arm is kept: it is a behaviour"
    captions = sorted(catalog["caption"])
    assert captions[0].startswith("The robot arm moves")
    assert "The robot arm stays still; the puck stays far from the goal." in captions


def test_a_robot_world_model_trains_from_the_shards(
    curated_robot: CurationResult,
    make_robot_train_config: Callable[..., TrainConfig],
    tmp_path: Path,
) -> None:
    episodes = read_shard_episodes(curated_robot.shards_dir, resolution="64x64")
    assert len(episodes) == 3 and all(e.actions.shape == (100, 7) for e in episodes)
    model = tiny_robot_model(7, [-2.0] * 7, [2.0] * 7)
    config = make_robot_train_config(
        Path("unused"), tmp_path, model, shards_dir=str(curated_robot.shards_dir)
    )
    checkpoint = train_world_model(config)
    env = gym.make(envs.ROBOT_ID, checkpoint=str(checkpoint), device="cpu")
    observation, _ = env.reset(seed=0)
    observation, reward, *_ = env.step(np.zeros(7, dtype=np.float32))
    assert observation.shape == (64, 64, 3) and np.isfinite(reward)
    env.close()


def test_a_causal_video_tokenizer_trains_on_the_robot_shards(
    curated_robot: CurationResult, tmp_path: Path
) -> None:
    config = TokenizerTrainConfig(
        shards_dir=str(curated_robot.shards_dir),
        run_dir=str(tmp_path),
        held_out_fraction=0.34,
        steps=2,
        batch=2,
        clip_frames=5,
        eval_every=2,
        tokenizer=VideoTokenizerConfig(kind="continuous", width=8),
    )
    checkpoint = train_tokenizer(config)
    assert (checkpoint / "model.safetensors").exists()
