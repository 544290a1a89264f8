"""RL inside the world model, and policy initialisation from it.

PPO or DQN (off-policy) trained on WFM-Driving-v0 (batched, rewarded by the learned reward
head), or on the real highway-env for comparison, then evaluated zero-shot in the real env.
``task=robot`` does the same with PPO on WFM-Robot-v0 and the real MuJoCo Pusher.
Policy initialisation trains in the real env from a start the world model gave: the policy
PPO learned inside the world model (``init=wfm_policy``), or the world model's frozen frame
encoder as the policy's features (``init=wfm_encoder``).

    python -m experiments.train_rl env=wfm total_steps=20000                   # PPO in imagination
    python -m experiments.train_rl env=wfm algorithm=dqn total_steps=20000     # DQN in imagination
    python -m experiments.train_rl env=real total_steps=20000                  # PPO in the real env
    python -m experiments.train_rl env=real init=wfm_policy                    # fine-tune it in real
    python -m experiments.train_rl env=real init=wfm_encoder                   # WFM features
    python -m experiments.train_rl plot_only=true                              # redraw the figures
    python -m experiments.train_rl --config-name train_rl_robot env=wfm        # the robot task

Writes ``experiments/results/rl/<run>.json`` (real-env return, real interactions used,
wall-clock, learning curve), ``learning_curves.png`` (every run) and, once a real run started
from the world model, ``policy_init.png`` (real runs: real steps to ``return_threshold``);
TensorBoard logs under ``runs/rl``. Another PPO ``seed`` of a run goes to its own ``out_dir``
(``make rl`` uses ``experiments/results/rl_seeds/seed_<s>``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import hydra
import matplotlib
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import world_models
from envs.sb3 import WFMVecEnvSB3
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.tasks import Task, get_task
from experiments.train_policies import TrainPoliciesConfig
from policies.dqn import SmallCNN
from policies.features import WorldModelEncoder
from wfm_sim.io import atomic_path, write_json_atomic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class RLConfig:
    """On which task (``experiments.tasks``), where to train (``env``: ``"wfm"`` or ``"real"``),
    with what (``algorithm``: ``"ppo"`` or ``"dqn"``, DQN for discrete actions only), from what
    start (``init``: ``"scratch"``, ``"wfm_policy"`` or ``"wfm_encoder"``, the last two in the
    real env only), for how long, and the evaluation."""

    task: str = "driving"
    env: str = "wfm"
    algorithm: str = "ppo"
    init: str = "scratch"
    pretrain_steps: int = 20_000
    """``init=wfm_policy``: world-model steps of the pre-training before the real env."""
    checkpoint: str = ""
    """The world model: a zoo name or a folder; empty means the task's committed one."""
    total_steps: int = 20_000
    n_envs: int = 16
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    seed: int = 0
    eval_episodes: int = 8
    eval_seed: int = 30_000
    threads: int = 2
    return_threshold: float = 15.0
    """``policy_init.png`` marks the real steps each real run needs to reach this return."""
    out_dir: str = "experiments/results/rl"
    log_dir: str = "runs/rl"
    plot_only: bool = False

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if not self.checkpoint:
            self.checkpoint = task.checkpoint
        if self.algorithm == "dqn" and not np.isscalar(task.neutral_action):
            raise ValueError(f"DQN needs discrete actions; task {self.task!r} has vectors: use ppo")
        if self.env not in ("wfm", "real"):
            raise ValueError(f"env must be 'wfm' or 'real', got {self.env!r}")
        if self.algorithm not in ("ppo", "dqn"):
            raise ValueError(f"algorithm must be 'ppo' or 'dqn', got {self.algorithm!r}")
        if self.init not in ("scratch", "wfm_policy", "wfm_encoder"):
            raise ValueError(
                f"init must be 'scratch', 'wfm_policy' or 'wfm_encoder', got {self.init!r}"
            )
        if self.init != "scratch" and (self.env != "real" or self.algorithm != "ppo"):
            raise ValueError(
                f"init={self.init} starts PPO in the real env from the world model; "
                "use env=real algorithm=ppo"
            )

    @property
    def run_name(self) -> str:
        """``<env>_<algorithm>``, plus ``_from_<init>`` for an initialised run."""
        name = f"{self.env}_{self.algorithm}"
        return name if self.init == "scratch" else f"{name}_from_{self.init}"


class _Curve(BaseCallback):
    """Records (timestep, mean return of the last 20 finished training episodes)."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.model.ep_info_buffer and self.num_timesteps % 512 < self.training_env.num_envs:
            returns = [e["r"] for e in list(self.model.ep_info_buffer)[-20:]]
            self.points.append((self.num_timesteps, float(np.mean(returns))))
        return True


def training_env(config: RLConfig, env: str) -> VecEnv:
    """The vectorised, monitored env a run trains in: ``config.n_envs`` copies of the world
    model (batched) for ``"wfm"``, up to 4 real simulators for ``"real"``."""
    if env == "wfm":
        return VecMonitor(
            WFMVecEnvSB3(num_envs=config.n_envs, seed=config.seed, checkpoint=config.checkpoint)
        )
    return VecMonitor(DummyVecEnv([get_task(config.task).make_real_env] * min(config.n_envs, 4)))


def build_algorithm(config: RLConfig, env: VecEnv, on_wfm: bool) -> BaseAlgorithm:
    """PPO with SB3's CNN (or the world model's encoder as features), or DQN with the zoo's
    ``SmallCNN`` and the zoo's hyper-parameters, one gradient step per transition."""
    if config.algorithm == "dqn":
        zoo = TrainPoliciesConfig()
        return DQN(
            "CnnPolicy",
            env,
            learning_rate=zoo.learning_rate,
            buffer_size=zoo.buffer_size,
            learning_starts=zoo.learning_starts,
            batch_size=zoo.batch_size,
            gamma=zoo.gamma,
            train_freq=zoo.train_freq,
            gradient_steps=zoo.gradient_steps * env.num_envs,
            target_update_interval=zoo.target_update_interval,
            exploration_fraction=zoo.exploration_fraction,
            exploration_final_eps=zoo.exploration_final_eps,
            seed=config.seed,
            device="cpu",
            tensorboard_log=config.log_dir,
            policy_kwargs={
                "features_extractor_class": SmallCNN,
                "features_extractor_kwargs": {"config": zoo.arch},
                "net_arch": list(zoo.arch.net_arch),
            },
        )
    policy_kwargs: dict[str, Any] = {"features_extractor_kwargs": {"features_dim": 256}}
    if config.init == "wfm_encoder":
        policy_kwargs = {
            "features_extractor_class": WorldModelEncoder,
            "features_extractor_kwargs": {"checkpoint": config.checkpoint, "features_dim": 256},
        }
    return PPO(
        "CnnPolicy",
        env,
        n_steps=config.n_steps if on_wfm else 256,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=config.learning_rate,
        seed=config.seed,
        device="cpu",
        tensorboard_log=config.log_dir,
        policy_kwargs=policy_kwargs,
    )


class Predictor(Protocol):
    """What the real-env evaluation acts with: an SB3 algorithm, or any object that maps a
    frame to an action the same way (``experiments.bench.rl_constant_actions``)."""

    def predict(self, observation: Any, *, deterministic: bool) -> tuple[Any, Any]: ...


def evaluate_in_real_env(
    model: Predictor, episodes: int, first_seed: int, task: Task
) -> list[float]:
    """Zero-shot returns of ``model`` (deterministic) in the task's real simulator."""
    env = task.make_real_env()
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    returns = []
    for seed in range(first_seed, first_seed + episodes):
        frame, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(frame, deterministic=True)
            frame, reward, terminated, truncated, _ = env.step(int(action) if discrete else action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def _real_interactions(config: RLConfig) -> int:
    """Real env steps the run needed: its own for ``real``; for ``wfm``, the footage frames the
    world model was trained on (the imagination is free)."""
    if config.env == "real" and config.init == "scratch":
        return config.total_steps
    footage = footage_frames(config.checkpoint)
    return footage + (config.total_steps if config.env == "real" else 0)


def footage_frames(checkpoint: str) -> int:
    """Real frames behind a world model: its footage (held-out episodes included, they were
    recorded too) and every extra footage folder it trained on."""
    training = json.loads((world_models.checkpoint_path(checkpoint) / "training.json").read_text())
    frames = training["frames"]
    return int(frames["train"] + frames["held_out"] + frames.get("extra", 0))


def learn(model: BaseAlgorithm, steps: int, name: str) -> tuple[list[tuple[int, float]], float]:
    """Train ``model`` for ``steps`` env steps: (learning curve, seconds)."""
    curve = _Curve()
    started = time.perf_counter()
    model.learn(total_timesteps=steps, callback=curve, tb_log_name=name, progress_bar=True)
    return curve.points, time.perf_counter() - started


def train_rl(config: RLConfig) -> dict[str, Any]:
    """Train in ``config.env`` (after pre-training in the world model for ``init=wfm_policy``),
    evaluate in the real env, write ``<out_dir>/<run_name>.json``."""
    torch.set_num_threads(config.threads)
    pretrain_seconds = 0.0
    pretrained: BaseAlgorithm | None = None
    if config.init == "wfm_policy":
        wfm_env = training_env(config, "wfm")
        pretrained = build_algorithm(config, wfm_env, on_wfm=True)
        _, pretrain_seconds = learn(pretrained, config.pretrain_steps, f"{config.run_name}_pre")
        wfm_env.close()
    env = training_env(config, config.env)
    model = build_algorithm(config, env, on_wfm=config.env == "wfm")
    if pretrained is not None:
        model.policy.load_state_dict(pretrained.policy.state_dict())
    curve, train_seconds = learn(model, config.total_steps, config.run_name)
    env.close()
    returns = evaluate_in_real_env(
        model, config.eval_episodes, config.eval_seed, get_task(config.task)
    )
    result = {
        "benchmark": "rl",
        "machine": machine_facts(),
        "run": config.run_name,
        "task": config.task,
        "env": config.env,
        "algorithm": config.algorithm.upper(),
        "init": config.init,
        "total_steps": config.total_steps,
        "pretrain_steps": config.pretrain_steps if config.init == "wfm_policy" else 0,
        "real_interactions": _real_interactions(config),
        "train_seconds": round(train_seconds + pretrain_seconds, 1),
        "real_return_mean": float(np.mean(returns)),
        "real_returns": [round(r, 3) for r in returns],
        "curve": curve,
        "steps_to_threshold": steps_to_threshold(curve, config.return_threshold),
        "return_threshold": config.return_threshold,
        "config": vars(config),
    }
    write_json_atomic(Path(config.out_dir) / f"{config.run_name}.json", result)
    return result


def steps_to_threshold(curve: list[tuple[int, float]], threshold: float) -> int | None:
    """The first env step at which the curve's return reaches ``threshold`` (None: never)."""
    return next((int(step) for step, value in curve if value >= threshold), None)


def _runs(out_dir: str | Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(Path(out_dir).glob("*.json")):
        run = json.loads(path.read_text())
        if run.get("benchmark") == "rl":
            runs.append({"run": path.stem, **run})
    return runs


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_learning_curves(out_dir: str | Path) -> Path | None:
    """Training-episode return against env steps for every run in ``out_dir``, with each run's
    zero-shot real return as a dashed line."""
    runs = _runs(out_dir)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in runs:
        steps, returns = zip(*run["curve"], strict=True) if run["curve"] else ((), ())
        line = ax.plot(steps, returns, label=f"{run['run']} (training return)")[0]
        ax.axhline(
            run["real_return_mean"],
            color=line.get_color(),
            linestyle="--",
            label=f"{run['run']}: real return {run['real_return_mean']:.1f}",
        )
    ax.set_xlabel("env steps (world-model steps for wfm_* runs)")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=6)
    return _save(fig, Path(out_dir) / "learning_curves.png")


def plot_policy_initialisation(out_dir: str | Path, threshold: float) -> Path | None:
    """Real-env training curves of the real runs (from scratch and initialised from the world
    model), with the real steps each needs to reach ``threshold``; None while no real run in
    ``out_dir`` was initialised from the world model (nothing to compare)."""
    runs = [r for r in _runs(out_dir) if r["env"] == "real" and r["curve"]]
    if all(run["init"] == "scratch" for run in runs):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in runs:
        steps, returns = zip(*run["curve"], strict=True)
        reached = steps_to_threshold(run["curve"], threshold)
        when = f"{reached} real steps" if reached is not None else "not reached"
        ax.plot(steps, returns, label=f"{run['run']} ({when})")
    ax.axhline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
    ax.set_xlabel("real env steps")
    ax.set_ylabel("training episode return (last 20 episodes)")
    ax.legend(fontsize=7)
    return _save(fig, Path(out_dir) / "policy_init.png")


ConfigStore.instance().store(name="train_rl_schema", node=RLConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_rl")
def main(cfg: DictConfig) -> None:
    """Train and evaluate (unless ``plot_only``), then redraw the comparison figure."""
    config = to_dataclass(cfg, RLConfig)
    if not config.plot_only:
        result = train_rl(config)
        print(
            f"{config.run_name}: real return {result['real_return_mean']:.2f} after "
            f"{config.total_steps} steps ({result['real_interactions']} real interactions, "
            f"{result['train_seconds']} s)"
        )
    print(f"learning curves: {plot_learning_curves(config.out_dir)}")
    print(
        "policy initialisation: "
        f"{plot_policy_initialisation(config.out_dir, config.return_threshold)}"
    )


if __name__ == "__main__":
    main()
