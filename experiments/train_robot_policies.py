"""Train the robot zoo's behaviour-cloned Pusher policies and measure every member's real return.

Method: behaviour cloning (``policies.robot.train_bc_policy``) of the scripted expert's torques
in the robot footage (default ``data/footage/robot``) from one ``(64, 64, 3) uint8`` frame,
MSE loss, Adam with a cosine-decayed learning rate and random shifts of up to ``shift`` pixels.
Two budgets give two policies of different quality:

- ``bc_best``: ``best_steps`` gradient steps on every episode of the expert at all its noise
  levels (``expert_noise_0``, ``_0.3``, ``_1``). The noisy runs visit states off the clean
  expert's path and their torques are the expert's plus zero-mean noise, which MSE averages
  away (DART's remedy for compounding errors): cloning them too gave a clearly better pusher
  than the clean expert alone (mean return -50 vs -62 on 16 clean episodes).
- ``bc_short``: ``short_steps`` steps on the first ``short_episodes`` clean-expert episodes.
  So little data is what makes it worse: on 2 episodes it memorises their paths and pushes
  hard toward the wrong places (mean return -78 vs -48). A barely trained net on 4 episodes
  (100-300 steps) was as good as ``bc_best``: its gentle torques cost little, and Pusher's
  control cost weighs about as much as the push itself (the expert scores only ~-47, a
  still arm ~-54).

Each is saved as ``<out_dir>/<name>.safetensors`` + ``<name>.json`` (training config, steps,
data size, the command). Then every member of ``load_robot_zoo(out_dir)`` plays
``eval_episodes`` episodes (seeds ``eval_seed`` ...) in the real simulator,
``make_robot_env(sim)``; the trained members' JSONs get their mean return, and
``<out_dir>/zoo_returns.json`` holds every member's.

    python -m experiments.train_robot_policies                       # the committed robot zoo
    python -m experiments.train_robot_policies best_steps=200 short_steps=50 out_dir=/tmp/zoo

Re-running is safe: policies whose files exist are kept (``overwrite=true`` retrains them);
evaluation always re-runs (``eval_episodes=0`` skips it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.config import to_dataclass
from policies.base import episode_returns
from policies.dqn import SmallCNNConfig
from policies.robot import (
    BCPixelPolicy,
    bc_network_config,
    load_robot_zoo,
    train_bc_policy,
)
from wfm_sim.data.footage import Episode, read_episodes
from wfm_sim.io import write_json_atomic
from wfm_sim.sources.pusher import RobotSimConfig, make_robot_env


@dataclass
class TrainRobotPoliciesConfig:
    """Everything one run depends on; Hydra overrides any field (``key=value``)."""

    footage_dir: str = "data/footage/robot"
    out_dir: str = "policies/zoo/robot"
    best_behaviours: list[str] = field(
        default_factory=lambda: ["expert_noise_0", "expert_noise_0.3", "expert_noise_1"]
    )
    best_steps: int = 5_000
    best_episodes: int | None = None
    short_behaviours: list[str] = field(default_factory=lambda: ["expert_noise_0"])
    short_steps: int = 1_000
    short_episodes: int | None = 2
    seed: int = 0
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    shift: int = 2
    eval_episodes: int = 10
    eval_seed: int = 0
    num_threads: int = 1
    overwrite: bool = False
    progress_bar: bool = True
    arch: SmallCNNConfig = field(default_factory=bc_network_config)
    sim: RobotSimConfig = field(default_factory=RobotSimConfig)

    def budgets(self) -> dict[str, tuple[list[str], int, int | None]]:
        """``{name: (behaviours cloned, gradient steps, episodes of data or None for all)}``
        of the BC policies."""
        return {
            "bc_best": (self.best_behaviours, self.best_steps, self.best_episodes),
            "bc_short": (self.short_behaviours, self.short_steps, self.short_episodes),
        }


def train(cfg: TrainRobotPoliciesConfig, command: str = "") -> dict[str, dict[str, Any]]:
    """Train the missing BC policies, evaluate the whole zoo; return ``{name: result}``.

    ``command`` (how the run was launched) is recorded in each trained policy's JSON.
    """
    torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out_dir)
    episodes: list[Episode] | None = None
    train_config = OmegaConf.to_container(OmegaConf.structured(cfg))
    for name, (behaviours, steps, max_episodes) in cfg.budgets().items():
        weights = out / f"{name}.safetensors"
        if weights.is_file() and weights.with_suffix(".json").is_file() and not cfg.overwrite:
            print(f"{weights} already exists; keeping it (overwrite=true retrains)")
            continue
        if episodes is None:
            episodes = read_episodes(cfg.footage_dir)
            print(f"read {len(episodes)} episodes from {cfg.footage_dir}")
        policy = train_bc_policy(
            episodes,
            steps,
            cfg.seed,
            name=name,
            behaviours=behaviours,
            max_episodes=max_episodes,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            shift=cfg.shift,
            config=cfg.arch,
            progress=cfg.progress_bar,
        )
        policy.save(
            weights,
            command=command,
            footage_dir=cfg.footage_dir,
            env="wfm_sim.sources.pusher.make_robot_env",
            train_config=train_config,
        )
        print(
            f"saved {name}: {steps} steps on {policy.metadata['data_episodes']} episodes "
            f"({policy.metadata['data_frames']} frames), final loss "
            f"{policy.metadata['final_loss']}"
        )
    return evaluate(cfg, command) if cfg.eval_episodes > 0 else {}


def evaluate(cfg: TrainRobotPoliciesConfig, command: str = "") -> dict[str, dict[str, Any]]:
    """Each zoo member's real returns on seeds ``eval_seed ..``; written to the trained
    members' JSONs and to ``<out_dir>/zoo_returns.json``."""
    out = Path(cfg.out_dir)
    env = make_robot_env(cfg.sim)
    seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes))
    results: dict[str, dict[str, Any]] = {}
    zoo = load_robot_zoo(out)
    for policy in tqdm(zoo, desc="evaluating", unit="policy", disable=not cfg.progress_bar):
        values = episode_returns(policy, env, seeds)
        result = {
            "mean_return": float(np.mean(values)),
            "std_return": float(np.std(values)),
            "eval_seeds": seeds,
            "eval_returns": [round(v, 4) for v in values],
        }
        results[policy.name] = result
        tqdm.write(f"{policy.name:<18s} mean return {result['mean_return']:8.2f}")
        if isinstance(policy, BCPixelPolicy):
            policy.metadata.update(result)
            write_json_atomic(out / f"{policy.name}.json", policy.metadata)
    env.close()
    write_json_atomic(
        out / "zoo_returns.json",
        {"command": command, "env": "wfm_sim.sources.pusher.make_robot_env", "zoo": results},
    )
    return results


ConfigStore.instance().store(
    name="train_robot_policies",
    node={
        **OmegaConf.to_container(OmegaConf.structured(TrainRobotPoliciesConfig)),  # type: ignore[dict-item]
        "hydra": {
            "run": {"dir": "runs/train_robot_policies/${now:%Y-%m-%d_%H-%M-%S}"},
            "job": {"chdir": False},
        },
    },
)


def _command() -> str:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    return " ".join(["python -m experiments.train_robot_policies", *overrides])


@hydra.main(version_base=None, config_path=None, config_name="train_robot_policies")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: ``python -m experiments.train_robot_policies [overrides]``."""
    results = train(to_dataclass(cfg, TrainRobotPoliciesConfig), command=_command())
    print(f"{'policy':<18s} {'mean':>8s} {'std':>7s}   (real env, {cfg.eval_episodes} seeds)")
    for name, result in results.items():
        print(f"{name:<18s} {result['mean_return']:8.2f} {result['std_return']:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
