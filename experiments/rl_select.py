"""PPO candidates trained in one world model, one kept after each drove a few real episodes.

    python -m experiments.rl_select [candidates=3 episodes_per_candidate=4 seeds=[0,1,2] ...]

A PPO run in a world model made from little footage may land, by its seed's luck, on a
policy the model over-rates: in ``make rl-dyna`` PPO seeds 0 and 1 reach the real-trained
return while seed 2 drives like constant FASTER (34%), and the model rates the two alike.
Only real driving tells them apart. Here each of ``candidates`` PPO runs (different seeds,
the same model) drives ``episodes_per_candidate`` real episodes as it would be deployed
(deterministic actions); those episodes are recorded and counted with the model's footage
in the real-frame budget, and the candidate whose episodes returned most is kept. The kept
policy is then measured zero-shot on the real env's evaluation starts (``rl.eval_seed``),
which differ from the choosing episodes' starts and count for nothing.

Each selection seed ``s`` in ``seeds`` trains its own candidates (PPO seeds
``s * candidates`` to ``s * candidates + candidates - 1``) and drives them from its own
starts, so a result can be told from one selection's luck. Policies, recorded episodes and
rows stay on disk: a killed run resumes at the candidate it stopped in. Results:
``out_dir/metrics.json`` and ``out_dir/rl_select.png``.
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
from stable_baselines3.common.base_class import BaseAlgorithm

from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.dyna_rl import PolicyBehaviour, checked_episode_lengths, train_policy_in_model
from experiments.train_rl import RLConfig, footage_frames
from wfm_sim.data import episode_returns
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources.recorder import RecorderConfig, record_footage


@dataclass
class RLSelectConfig:
    """The world model the candidates train in, how many PPO candidates each selection trains
    and how many real episodes each drives before the choice, the real-frame budget those
    episodes and the model's footage must fit, the PPO run of each candidate (``rl``; its
    seed and log folder are set per candidate) and the selection seeds."""

    checkpoint: str = "runs/dyna_rl/base_crash/checkpoint"
    candidates: int = 3
    episodes_per_candidate: int = 4
    frame_budget: int = 2_000
    """Real frames a selection may use: the model's footage and every choosing episode."""
    max_episode_frames: int = 31
    """The most frames one real episode can hold (highway-fast's 30 steps and the first); the
    budget is checked as if every choosing episode ran this long."""
    select_seed: int = 60_000
    """Selection ``s`` drives its candidates from recorder seed ``select_seed + s`` (starts
    unlike the footage's and the evaluation's), the same starts for each of its candidates."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    rl: RLConfig = field(default_factory=lambda: RLConfig(env="wfm"))
    real_results: str = "experiments/results/rl/real_ppo.json"
    """The PPO run trained in the real env (``make rl``) the kept policies are weighed against."""
    footage_dir: str = "data/footage/rl_select"
    run_dir: str = "runs/rl_select"
    out_dir: str = "experiments/results/rl_select"

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.episodes_per_candidate < 1:
            raise ValueError("candidates and episodes_per_candidate must be >= 1")
        if self.rl.env != "wfm" or self.rl.init != "scratch":
            raise ValueError("the candidates train in the world model: rl.env=wfm rl.init=scratch")
        if not self.seeds or len(set(self.seeds)) < len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds {self.seeds} must be distinct, >= 0, and at least one")

    def candidate_seeds(self, seed: int) -> list[int]:
        """The PPO seeds selection ``seed`` trains: disjoint from every other selection's."""
        return [seed * self.candidates + k for k in range(self.candidates)]

    def worst_case_frames(self) -> int:
        """Real frames one selection uses if every choosing episode runs full length."""
        return footage_frames(self.checkpoint) + (
            self.candidates * self.episodes_per_candidate * self.max_episode_frames
        )


def train_candidate(config: RLSelectConfig, ppo_seed: int) -> tuple[dict[str, Any], BaseAlgorithm]:
    """PPO seed ``ppo_seed`` in the model, measured zero-shot in the real env (kept on disk:
    a candidate already trained in this model is loaded)."""
    rl = dataclasses.replace(
        config.rl,
        checkpoint=config.checkpoint,
        seed=ppo_seed,
        log_dir=str(Path(config.rl.log_dir) / f"ppo_seed_{ppo_seed}"),
    )
    name = f"ppo_seed_{ppo_seed}"
    return train_policy_in_model(
        rl,
        {"ppo_seed": ppo_seed},
        Path(config.run_dir) / name / "policy.safetensors",
        Path(config.out_dir) / "candidates" / f"{name}.json",
        None,
    )


def drive_real_episodes(
    config: RLSelectConfig, seed: int, ppo_seed: int, model: BaseAlgorithm
) -> dict[str, Any]:
    """Candidate ``ppo_seed``'s choosing episodes in selection ``seed`` (recorded, resumed
    when part-recorded): their returns and frames."""
    recorder = RecorderConfig(
        out_dir=str(Path(config.footage_dir) / f"seed_{seed}" / f"ppo_seed_{ppo_seed}"),
        episodes=config.episodes_per_candidate,
        episodes_per_part=config.episodes_per_candidate,
        seed=config.select_seed + seed,
    )
    behaviour = PolicyBehaviour(model, deterministic=True)
    folder = record_footage(recorder, [(f"ppo_seed_{ppo_seed}", behaviour)])
    lengths = checked_episode_lengths(folder, config.max_episode_frames)
    returns = list(episode_returns(folder).values())
    return {
        "footage": str(folder),
        "choosing_returns": [round(r, 3) for r in returns],
        "choosing_return_mean": float(np.mean(returns)),
        "choosing_frames": int(sum(lengths.values())),
    }


def run_selection(config: RLSelectConfig, seed: int) -> dict[str, Any]:
    """Selection ``seed``: every candidate trained, measured and driven on the choosing starts;
    the one whose choosing episodes returned most (the first on a tie) is kept."""
    rows = []
    for ppo_seed in config.candidate_seeds(seed):
        row, model = train_candidate(config, ppo_seed)
        summary = {k: v for k, v in row.items() if k not in ("curve", "checkpoint", "real_frames")}
        rows.append({**summary, **drive_real_episodes(config, seed, ppo_seed, model)})
    kept = max(range(len(rows)), key=lambda k: (rows[k]["choosing_return_mean"], -k))
    return {
        "seed": seed,
        "candidates": rows,
        "kept_ppo_seed": rows[kept]["ppo_seed"],
        "real_return_mean": rows[kept]["real_return_mean"],
        "real_frames": footage_frames(config.checkpoint) + sum(r["choosing_frames"] for r in rows),
    }


def plot_selections(selections: list[dict[str, Any]], real: dict[str, Any], path: Path) -> Path:
    """Each candidate's real return, grouped by selection, the kept one filled, beside the
    real-trained PPO run's return and 90% of it."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(len(s["candidates"]) for s in selections)
    for i, selection in enumerate(selections):
        for k, candidate in enumerate(selection["candidates"]):
            kept = candidate["ppo_seed"] == selection["kept_ppo_seed"]
            x = i + (k - (len(selection["candidates"]) - 1) / 2) * width
            ax.bar(
                x,
                candidate["real_return_mean"],
                width * 0.9,
                color="tab:blue" if kept else "none",
                edgecolor="tab:blue",
            )
            ax.annotate(
                f"PPO {candidate['ppo_seed']}",
                (x, 0.3),
                rotation=90,
                ha="center",
                fontsize=7,
            )
    target = real["real_return_mean"]
    ax.axhline(
        target, color="k", ls="--", label=f"PPO in the real env ({real['total_steps']:,} steps)"
    )
    ax.axhline(0.9 * target, color="k", ls=":", label="90% of it (aim)")
    ax.bar(0, 0, color="tab:blue", label="kept (best on its choosing episodes)")
    ax.bar(0, 0, color="none", edgecolor="tab:blue", label="not kept")
    ax.set_xticks(range(len(selections)), [f"selection {s['seed']}" for s in selections])
    ax.set_ylabel("mean real return (evaluation starts)")
    ax.set_ylim(0, 1.3 * target)
    ax.legend(fontsize=8, loc="upper right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def run_rl_select(config: RLSelectConfig) -> dict[str, Any]:
    """Every selection of ``seeds``; writes and returns the summary. Refuses a configuration
    whose choosing episodes could pass the real-frame budget before training anything."""
    worst = config.worst_case_frames()
    if worst > config.frame_budget:
        raise ValueError(
            f"{config.candidates} candidates x {config.episodes_per_candidate} episodes of up to "
            f"{config.max_episode_frames} frames on top of the model's "
            f"{footage_frames(config.checkpoint):,} footage frames could use {worst:,} real "
            f"frames, more than frame_budget={config.frame_budget:,}"
        )
    torch.set_num_threads(config.rl.threads)
    real = json.loads(Path(config.real_results).read_text())
    selections = [run_selection(config, seed) for seed in config.seeds]
    payload = {
        "benchmark": "rl_select",
        "machine": machine_facts(),
        "config": dataclasses.asdict(config),
        "real_run": {
            "total_steps": real["total_steps"],
            "real_interactions": real["real_interactions"],
            "real_return_mean": real["real_return_mean"],
        },
        "selections": selections,
    }
    out = Path(config.out_dir)
    plot_selections(selections, real, out / "rl_select.png")
    write_json_atomic(out / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="rl_select_schema", node=RLSelectConfig)


@hydra.main(version_base=None, config_path="conf", config_name="rl_select")
def main(cfg: DictConfig) -> None:
    """Run the selections and print each kept policy's real return against the real-trained
    run's."""
    payload = run_rl_select(to_dataclass(cfg, RLSelectConfig))
    real = payload["real_run"]
    for selection in payload["selections"]:
        chosen = ", ".join(
            f"PPO {c['ppo_seed']} {c['choosing_return_mean']:.2f}" for c in selection["candidates"]
        )
        share = selection["real_return_mean"] / real["real_return_mean"]
        print(
            f"selection {selection['seed']}: choosing returns {chosen}; kept PPO "
            f"{selection['kept_ppo_seed']}: real return {selection['real_return_mean']:.2f} "
            f"({share:.0%} of the real-trained {real['real_return_mean']:.2f}) with "
            f"{selection['real_frames']:,} real frames "
            f"({selection['real_frames'] / real['real_interactions']:.1%} of its)"
        )
    print(f"results in {cfg.out_dir}/metrics.json and rl_select.png")


if __name__ == "__main__":
    main()
