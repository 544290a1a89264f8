"""Dyna for RL in the world model: PPO learns in a world model made from a little footage, its
own real episodes are recorded, the model trains further on the footage plus them, PPO goes on
in the new model, and again, while the real frames used stay inside a budget.

    python -m experiments.dyna_rl [rounds=3 episodes_per_round=8 seeds=[1,2] ...]

A policy trained in imagination exploits the model where it is wrong: a world model made from
2,000 frames rates driving safe that crashes in the real env (``make rl-small-footage``). Its
footage holds few of the states such a policy leads to; each round adds exactly those. The
real frames counted are the footage behind the starting model (held-out episodes included)
and every round's recorded episodes; the real-env evaluations only measure. The loop runs
once per PPO seed (``rl.seed`` and ``seeds``), each with its own episodes, models and budget,
so a result can be told from a seed's luck. With ``policy_each_round=fresh`` PPO starts from
scratch in each round's model instead of going on from the last round's policy
(``make rl-dyna-fresh``).

Every round's footage, model, policy (safetensors) and result stay on disk, so a killed run
resumes at the round it stopped in. Results: ``out_dir/metrics.json`` (each seed's rounds:
real return and real frames used, against the PPO run trained in the real env) and
``out_dir/dyna_rl.png``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig
from safetensors.torch import load_model, save_model
from stable_baselines3.common.base_class import BaseAlgorithm

from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.tasks import get_task
from experiments.train_rl import (
    RLConfig,
    build_algorithm,
    evaluate_in_real_env,
    footage_frames,
    learn,
    training_env,
)
from wfm_sim.data import episode_lengths
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources.recorder import RecorderConfig, record_footage
from wfm_sim.training.world_model import TrainConfig, train_world_model, trained_with

POLICY_EACH_ROUND = ("continue", "fresh")


@dataclass
class DynaRLConfig:
    """The model to start from, at most how many rounds of how many real episodes the policy
    drives, the real-frame budget they must fit, the training of each round's model (the
    starting model's own last run, repeated from the previous round's model on the footage
    plus every round's episodes; ``*_steps`` left None keep that run's step counts), the PPO
    run of each round (``rl``; its checkpoint is filled in per round), and the other PPO
    seeds that run the loop too."""

    initial_checkpoint: str = "runs/dyna_rl/base_crash/checkpoint"
    rounds: int = 3
    """At most this many rounds; the frame budget may stop a seed's loop first."""
    episodes_per_round: int = 8
    frame_budget: int = 2_000
    """Real frames the loop may use in all: the starting model's footage and every round's
    episodes. A round is recorded only if it fits even when all its episodes run full length."""
    max_episode_frames: int = 31
    """The most frames one real episode can hold (highway-fast's 30 steps and the first)."""
    collect_seed: int = 50_000
    """Round r records with recorder seed ``collect_seed + r`` (starts unlike the footage's
    and the evaluation's) and samples the policy's actions from torch seed ``collect_seed + r``."""
    dynamics_steps: int | None = None
    finetune_steps: int | None = None
    imagined_head_steps: int | None = None
    policy_each_round: str = "continue"
    """``continue``: PPO goes on from the previous round's policy. ``fresh``: PPO starts from
    scratch in each round's model, the previous round's policy only driving that round's real
    episodes, so that a policy that collapsed onto an action the old model over-rated (FASTER,
    whose crashes a small model does not imagine) is not carried into the next round's model."""
    rl: RLConfig = field(default_factory=lambda: RLConfig(env="wfm"))
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    """PPO seeds beside ``rl.seed`` that each run the whole loop, under ``seed_<s>`` in
    ``footage_dir``, ``run_dir`` and ``out_dir``: how far a return is the loop's and how far
    the seed's."""
    real_results: str = "experiments/results/rl/real_ppo.json"
    """The PPO run trained in the real env (``make rl``) the rounds are weighed against."""
    footage_dir: str = "data/footage/dyna_rl"
    run_dir: str = "runs/dyna_rl"
    out_dir: str = "experiments/results/rl_dyna"

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.episodes_per_round < 1:
            raise ValueError("rounds must be >= 0 and episodes_per_round >= 1")
        if self.rl.env != "wfm" or self.rl.init != "scratch":
            raise ValueError("the Dyna loop trains in the world model: rl.env=wfm rl.init=scratch")
        if self.frame_budget < 1 or self.max_episode_frames < 2:
            raise ValueError("frame_budget must be >= 1 and max_episode_frames >= 2")
        if self.policy_each_round not in POLICY_EACH_ROUND:
            raise ValueError(
                f"policy_each_round must be one of {POLICY_EACH_ROUND}, "
                f"got {self.policy_each_round!r}"
            )
        if self.rl.seed in self.seeds or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds {self.seeds} must differ from each other and rl.seed")


def seed_config(config: DynaRLConfig, seed: int) -> DynaRLConfig:
    """The loop of PPO seed ``seed``: ``config`` with that seed, in its own ``seed_<s>``
    sub-folders (footage, runs, results, TensorBoard logs), running no further seeds."""

    def sub(folder: str) -> str:
        return str(Path(folder) / f"seed_{seed}")

    return dataclasses.replace(
        config,
        rl=dataclasses.replace(config.rl, seed=seed, log_dir=sub(config.rl.log_dir)),
        seeds=[],
        footage_dir=sub(config.footage_dir),
        run_dir=sub(config.run_dir),
        out_dir=sub(config.out_dir),
    )


class PolicyBehaviour:
    """A trained SB3 policy as a recorder behaviour. By default it samples its actions, as PPO
    does while it trains, so its recorded episodes also hold the near misses of its
    exploration; ``deterministic`` drives as the real-env evaluation does."""

    def __init__(self, model: BaseAlgorithm, deterministic: bool = False) -> None:
        self.model = model
        self.deterministic = deterministic

    def __call__(self, frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> int:
        action, _ = self.model.predict(frame, deterministic=self.deterministic)
        return int(action)


def round_train_config(
    config: DynaRLConfig, round_index: int, init: str, footage: list[Path]
) -> TrainConfig:
    """Round ``round_index``'s world-model training: the starting model's last run, from
    ``init``, on its footage plus ``footage`` (every round's episodes so far), tokenizer kept."""
    steps = {
        name: value
        for name in ("dynamics_steps", "finetune_steps", "imagined_head_steps")
        if (value := getattr(config, name)) is not None
    }
    run_dir = Path(config.run_dir) / f"round_{round_index}" / "model"
    return dataclasses.replace(
        trained_with(config.initial_checkpoint),
        init_checkpoint=init,
        tokenizer_steps=0,
        extra_footage_dirs=[str(f) for f in footage],
        run_dir=str(run_dir),
        export_dir=str(run_dir / "checkpoint"),
        **steps,
    )


def _train_model(config: DynaRLConfig, round_index: int, init: str, footage: list[Path]) -> str:
    """Round ``round_index``'s checkpoint (kept when already exported)."""
    train_config = round_train_config(config, round_index, init, footage)
    if not (Path(train_config.export_dir) / "training.json").exists():
        train_world_model(train_config)
    return train_config.export_dir


def _collect(config: DynaRLConfig, round_index: int, model: BaseAlgorithm) -> Path:
    """Round ``round_index``'s real episodes driven by ``model`` (resumes a part-recorded
    round); refuses an episode longer than ``max_episode_frames``, which the budget assumed."""
    torch.manual_seed(config.collect_seed + round_index)
    recorder = RecorderConfig(
        out_dir=str(Path(config.footage_dir) / f"round_{round_index}"),
        episodes=config.episodes_per_round,
        episodes_per_part=config.episodes_per_round,
        seed=config.collect_seed + round_index,
    )
    folder = record_footage(
        recorder, [(f"dyna_ppo_round_{round_index - 1}", PolicyBehaviour(model))]
    )
    checked_episode_lengths(folder, config.max_episode_frames)
    return folder


def checked_episode_lengths(folder: Path, max_episode_frames: int) -> dict[int, int]:
    """Each recorded episode's length in ``folder``, or a ``ValueError`` when one is longer
    than ``max_episode_frames``: the real-frame budget was checked assuming none is."""
    lengths = episode_lengths(folder)
    longest = max(lengths.values())
    if longest > max_episode_frames:
        raise ValueError(
            f"{folder} holds an episode of {longest} frames, more than max_episode_frames="
            f"{max_episode_frames} that the frame budget assumed: raise it"
        )
    return lengths


def _policy_path(config: DynaRLConfig, round_index: int) -> Path:
    """Where a round's trained PPO policy is saved (safetensors)."""
    return Path(config.run_dir) / f"round_{round_index}" / "policy.safetensors"


def train_policy_in_model(
    rl: RLConfig, labels: dict[str, Any], policy_path: Path, row_path: Path, start: Path | None
) -> tuple[dict[str, Any], BaseAlgorithm]:
    """PPO in ``rl.checkpoint``'s world model for ``rl.total_steps``, from the policy saved at
    ``start`` (None: from scratch), evaluated zero-shot in the real env: (its row, led by
    ``labels``, the policy), the policy saved at ``policy_path`` and the row at ``row_path``.
    A run already measured with this checkpoint is loaded, not trained again."""
    env = training_env(rl, "wfm")
    model = build_algorithm(rl, env, on_wfm=True)
    if row_path.exists() and policy_path.exists():
        stored: dict[str, Any] = json.loads(row_path.read_text())
        if stored["checkpoint"] == rl.checkpoint:
            load_model(model.policy, str(policy_path))
            env.close()
            return stored, model
    if start is not None:
        load_model(model.policy, str(start))
    curve, seconds = learn(model, rl.total_steps, row_path.stem)
    env.close()
    policy_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(policy_path) as tmp:
        save_model(model.policy, str(tmp))
    returns = evaluate_in_real_env(model, rl.eval_episodes, rl.eval_seed, get_task(rl.task))
    row = {
        **labels,
        "checkpoint": rl.checkpoint,
        "real_frames": footage_frames(rl.checkpoint),
        "real_return_mean": float(np.mean(returns)),
        "real_returns": [round(r, 3) for r in returns],
        "imagined_return_last": curve[-1][1] if curve else None,
        "train_seconds": round(seconds, 1),
        "curve": curve,
    }
    write_json_atomic(row_path, row)
    return row, model


def _train_policy(
    config: DynaRLConfig, round_index: int, checkpoint: str, start: Path | None
) -> tuple[dict[str, Any], BaseAlgorithm]:
    """Round ``round_index``'s PPO run in ``checkpoint``'s world model (``train_policy_in_model``)."""
    return train_policy_in_model(
        dataclasses.replace(config.rl, checkpoint=checkpoint),
        {"round": round_index},
        _policy_path(config, round_index),
        Path(config.out_dir) / f"round_{round_index}.json",
        start,
    )


def plot_rounds(loops: list[dict[str, Any]], real: dict[str, Any], path: Path) -> Path:
    """Real return of each seed's policy after each round against the real frames used so
    far, beside the real-trained PPO run's return and 90% of it."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for loop in loops:
        rows = loop["rounds"]
        ax.plot(
            [r["real_frames"] for r in rows],
            [r["real_return_mean"] for r in rows],
            "o-",
            label=f"Dyna PPO, seed {loop['seed']} (rounds 0-{rows[-1]['round']})",
        )
    target = real["real_return_mean"]
    ax.axhline(
        target, color="k", ls="--", label=f"PPO in the real env ({real['total_steps']:,} steps)"
    )
    ax.axhline(0.9 * target, color="k", ls=":", label="90% of it (aim)")
    ax.axvline(0.1 * real["real_interactions"], color="tab:red", ls=":", label="10% of its steps")
    returns = [r["real_return_mean"] for loop in loops for r in loop["rounds"]]
    ax.set_ylim(0, 1.15 * max(target, *returns))
    ax.set_xlabel("real frames used (footage + Dyna episodes)")
    ax.set_ylabel("mean real return (8 episodes)")
    ax.legend(fontsize=8, loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def run_loop(config: DynaRLConfig) -> dict[str, Any]:
    """One seed's rounds (``rl.seed``), all that fit the budget, resuming what is on disk:
    ``{"seed", "stopped_by_budget", "rounds"}``, each round's row with its learning curve."""
    checkpoint = config.initial_checkpoint
    row, model = _train_policy(config, 0, checkpoint, None)
    rows, footage = [row], []
    stopped_by_budget = False
    for round_index in range(1, config.rounds + 1):
        worst = footage_frames(checkpoint) + config.episodes_per_round * config.max_episode_frames
        if worst > config.frame_budget:
            stopped_by_budget = True
            break
        footage.append(_collect(config, round_index, model))
        checkpoint = _train_model(config, round_index, checkpoint, footage)
        start = (
            _policy_path(config, round_index - 1)
            if config.policy_each_round == "continue"
            else None
        )
        row, model = _train_policy(config, round_index, checkpoint, start)
        rows.append(row)
    return {"seed": config.rl.seed, "stopped_by_budget": stopped_by_budget, "rounds": rows}


def run_dyna_rl(config: DynaRLConfig) -> dict[str, Any]:
    """The loop for ``rl.seed`` and for each of ``seeds``; writes and returns the summary."""
    torch.set_num_threads(config.rl.threads)
    real = json.loads(Path(config.real_results).read_text())
    loops = [run_loop(config), *(run_loop(seed_config(config, s)) for s in config.seeds)]
    payload = {
        "benchmark": "dyna_rl",
        "machine": machine_facts(),
        "config": dataclasses.asdict(config),
        "real_run": {
            "total_steps": real["total_steps"],
            "real_interactions": real["real_interactions"],
            "real_return_mean": real["real_return_mean"],
        },
        "loops": [
            {
                **loop,
                "rounds": [{k: v for k, v in r.items() if k != "curve"} for r in loop["rounds"]],
            }
            for loop in loops
        ],
        "curves": {
            str(loop["seed"]): {str(r["round"]): r["curve"] for r in loop["rounds"]}
            for loop in loops
        },
    }
    out = Path(config.out_dir)
    plot_rounds(loops, real, out / "dyna_rl.png")
    write_json_atomic(out / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="dyna_rl_schema", node=DynaRLConfig)


@hydra.main(version_base=None, config_path="conf", config_name="dyna_rl")
def main(cfg: DictConfig) -> None:
    """Run the rounds and print each one's real return against the real-trained run's."""
    payload = run_dyna_rl(to_dataclass(cfg, DynaRLConfig))
    real = payload["real_run"]
    for loop in payload["loops"]:
        for row in loop["rounds"]:
            print(
                f"seed {loop['seed']} round {row['round']}: real return "
                f"{row['real_return_mean']:.2f} ({row['real_return_mean'] / real['real_return_mean']:.0%} "
                f"of the real-trained {real['real_return_mean']:.2f}) with {row['real_frames']:,} "
                f"real frames ({row['real_frames'] / real['real_interactions']:.1%} of its)"
            )
        if loop["stopped_by_budget"]:
            print(
                f"seed {loop['seed']} stopped: its next round could pass the {cfg.frame_budget:,}-frame budget"
            )
    print(f"results in {cfg.out_dir}/metrics.json and dyna_rl.png")


if __name__ == "__main__":
    main()
