"""Train the zoo's DQN driving policies on pixels, saving one policy per step budget.

Method: stable-baselines3 DQN with the ``SmallCNN`` Q-network on the real simulator's
``(64, 64, 3) uint8`` frames (``make_driving_env``), hyper-parameters from highway-env's own
DQN example except a shorter exploration schedule (0.4 of training: 0.7 reached 19.1 instead
of 21.3 mean return at 15k steps). A callback writes the online Q-network (safetensors +
JSON) when training crosses each budget in ``budgets`` (e.g. 2k, 2.5k, 6k, 15k env steps), so
one run yields policies of increasing quality. Each saved policy is then reloaded from its
files and evaluated greedily for ``eval_episodes`` episodes (seeds ``eval_seed`` ...); the
mean return goes into its JSON. TensorBoard logs go under ``runs/``.

    python -m experiments.train_policies                                 # the committed zoo
    python -m experiments.train_policies total_steps=300 budgets=[100,300] out_dir=/tmp/zoo

Re-running is safe: budgets whose files exist are kept (and said so), training is skipped
when all exist, and only policies without a measured return are evaluated.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from experiments.config import to_dataclass
from policies.base import episode_returns
from policies.dqn import DQNPixelPolicy, SmallCNN, SmallCNNConfig, save_q_network
from wfm_sim.io import write_json_atomic
from wfm_sim.sources import DrivingSimConfig, make_driving_env


@dataclass
class TrainPoliciesConfig:
    """Everything one training run depends on (filled by Hydra from ``conf/train_policies.yaml``)."""

    total_steps: int = 15_000
    budgets: list[int] = field(default_factory=lambda: [2_000, 2_500, 6_000, 15_000])
    out_dir: str = "policies/zoo/driving"
    name_prefix: str = "dqn"
    seed: int = 0
    learning_rate: float = 5e-4
    buffer_size: int = 15_000
    learning_starts: int = 200
    batch_size: int = 32
    gamma: float = 0.8
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 50
    exploration_fraction: float = 0.4
    exploration_final_eps: float = 0.05
    eval_episodes: int = 10
    eval_seed: int = 0
    num_threads: int = 1
    overwrite: bool = False
    progress_bar: bool = True
    tensorboard_dir: str = "runs/train_policies/tensorboard"
    arch: SmallCNNConfig = field(default_factory=SmallCNNConfig)
    sim: DrivingSimConfig = field(default_factory=DrivingSimConfig)

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ValueError("budgets is empty; give at least one step budget, e.g. [2000]")
        if sorted(set(self.budgets)) != list(self.budgets) or min(self.budgets) <= 0:
            raise ValueError(f"budgets {list(self.budgets)} must be positive and increasing")
        if max(self.budgets) > self.total_steps:
            raise ValueError(
                f"budget {max(self.budgets)} exceeds total_steps {self.total_steps}; "
                "raise total_steps or drop the budget"
            )


def budget_name(prefix: str, budget: int) -> str:
    """Policy name for a budget: 2000 -> ``dqn_2k``, 2500 -> ``dqn_2.5k``, 300 -> ``dqn_300``."""
    label = f"{budget / 1000:g}k" if budget >= 1000 and budget % 100 == 0 else str(budget)
    return f"{prefix}_{label}"


class _BudgetCheckpoints(BaseCallback):
    """Save the online Q-network when training first reaches each budget; stop after the last.

    Training always runs under ``total_steps`` (so the exploration schedule, and with the
    same seed the saved weights, match a full run) and ends early once nothing is pending.
    """

    def __init__(self, cfg: TrainPoliciesConfig, pending: list[int], record: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.pending = sorted(pending)
        self.record = record
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        while self.pending and self.num_timesteps >= self.pending[0]:
            budget = self.pending.pop(0)
            name = budget_name(self.cfg.name_prefix, budget)
            out = Path(self.cfg.out_dir)
            save_q_network(
                self.model.policy.q_net.state_dict(),  # type: ignore[union-attr]
                self.cfg.arch,
                out / f"{name}.safetensors",
                out / f"{name}.json",
                extra={
                    **self.record,
                    "name": name,
                    "budget_steps": budget,
                    "train_seconds": round(time.perf_counter() - self.started, 1),
                },
            )
            tqdm.write(f"saved {name} after {self.num_timesteps} env steps")
        return bool(self.pending)


class _ProgressBar(BaseCallback):
    """A tqdm bar over env steps (SB3's own bar needs rich's live display)."""

    def __init__(self, total: int, enabled: bool) -> None:
        super().__init__()
        self.bar = tqdm(total=total, unit="step", desc="DQN", disable=not enabled)

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def train(cfg: TrainPoliciesConfig, command: str = "") -> dict[str, float]:
    """Train, save every budget's policy, evaluate them; return {name: mean real return}.

    ``command`` (how the run was launched) is recorded in each policy's JSON.
    """
    torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out_dir)
    names = {b: budget_name(cfg.name_prefix, b) for b in cfg.budgets}
    existing = [
        b
        for b in cfg.budgets
        if (out / f"{names[b]}.safetensors").is_file() and (out / f"{names[b]}.json").is_file()
    ]
    pending = list(cfg.budgets) if cfg.overwrite else [b for b in cfg.budgets if b not in existing]
    for b in existing:
        verb = "overwriting" if cfg.overwrite else "keeping it (overwrite=true retrains)"
        print(f"{out / names[b]}.safetensors already exists; {verb}")

    if pending:
        _train_dqn(cfg, pending, command)
    else:
        print("every budget already has weights; skipping training")

    returns: dict[str, float] = {}
    for budget in cfg.budgets:
        name = names[budget]
        config_path = out / f"{name}.json"
        metadata = json.loads(config_path.read_text())
        if "mean_return" in metadata and budget not in pending:
            returns[name] = float(metadata["mean_return"])
            continue
        policy = DQNPixelPolicy.load(out / f"{name}.safetensors", config_path, name=name)
        seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes))
        values = episode_returns(policy, make_driving_env(cfg.sim), seeds)
        metadata.update(
            mean_return=float(np.mean(values)),
            std_return=float(np.std(values)),
            eval_seeds=seeds,
            eval_returns=[round(v, 4) for v in values],
        )
        write_json_atomic(config_path, metadata)
        returns[name] = metadata["mean_return"]
        print(f"{name}: mean return {returns[name]:.2f} over {len(seeds)} episodes")
    return returns


def _train_dqn(cfg: TrainPoliciesConfig, pending: list[int], command: str) -> None:
    env = make_driving_env(cfg.sim)
    model = DQN(
        "CnnPolicy",
        env,
        learning_rate=cfg.learning_rate,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        gamma=cfg.gamma,
        train_freq=cfg.train_freq,
        gradient_steps=cfg.gradient_steps,
        target_update_interval=cfg.target_update_interval,
        exploration_fraction=cfg.exploration_fraction,
        exploration_final_eps=cfg.exploration_final_eps,
        policy_kwargs={
            "features_extractor_class": SmallCNN,
            "features_extractor_kwargs": {"config": cfg.arch},
            "net_arch": list(cfg.arch.net_arch),
        },
        tensorboard_log=cfg.tensorboard_dir,
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    record = {
        "command": command,
        "algorithm": "stable-baselines3 DQN",
        "env": "wfm_sim.sources.make_driving_env",
        "train_config": OmegaConf.to_container(OmegaConf.structured(cfg)),
    }
    callbacks: list[BaseCallback] = [
        _ProgressBar(cfg.total_steps, cfg.progress_bar),
        _BudgetCheckpoints(cfg, pending, record),
    ]
    started = time.perf_counter()
    model.learn(total_timesteps=cfg.total_steps, callback=callbacks, tb_log_name="dqn")
    print(f"trained {model.num_timesteps} env steps in {time.perf_counter() - started:.0f} s")
    env.close()


def _command() -> str:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    return " ".join(["python -m experiments.train_policies", *overrides])


@hydra.main(version_base=None, config_path="conf", config_name="train_policies")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: ``python -m experiments.train_policies [overrides]``."""
    returns = train(to_dataclass(cfg, TrainPoliciesConfig), command=_command())
    for name, value in returns.items():
        print(f"{name:>12s}  {value:6.2f}")


if __name__ == "__main__":
    sys.exit(main())
