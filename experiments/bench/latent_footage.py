"""Whether the latent planner's model is short of footage: latent models trained on three and
five times ``make record``'s footage against the same training steps on that footage alone, each
driving the real env under the MPC demo's planner (risk aversion 1) on the 12 starts of the
latent MPC run, against the oracle planner's returns there, and on the 100 starts of
``make planner-risk``, beside the committed ``driving_latent`` on both.

    python -m experiments.bench.latent_footage [--model NAME=CHECKPOINT ...]

``make latent-footage`` trains the models below and runs this (``make train-latent-world-model``
records two of the extra recordings and trains the two on three times the footage, the second
of which it exports to the zoo as ``driving_latent``). The models are kept in ``runs/``; none had a Dyna
round. The committed row is the zoo's ``driving_latent`` when the bench ran.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import world_models
from experiments.bench.common import RESULTS_DIR, write_result
from experiments.bench.planner_risk import SETTINGS, measure

DEMO_SETTING = "risk aversion 1, floor 0.01"
"""The MPC demo's way of weighing a crash, as ``make planner-risk`` names it."""

MODELS: dict[str, str] = {
    "make record's footage, 3,000 steps": "runs/latent_base/checkpoint",
    "make record's footage, 9,000 steps": "runs/latent_base_9k/checkpoint",
    "3x the footage, 3,000 steps": "runs/latent_more3/checkpoint",
    "3x the footage, 9,000 steps": "runs/latent_more3_9k/checkpoint",
    "5x the footage, 3,000 steps": "runs/latent_more5/checkpoint",
    "5x the footage, 9,000 steps": "runs/latent_more5_9k/checkpoint",
}
"""The models ``make latent-footage`` trains, by name: their checkpoints."""


def oracle_share(returns: list[float], oracle_returns: list[float]) -> float:
    """A planner's mean return as a share of the oracle's on the same starts, refused when
    the two were not measured on as many starts."""
    if len(returns) != len(oracle_returns) or not returns:
        raise ValueError(
            f"{len(returns)} returns against {len(oracle_returns)} oracle returns: "
            "measure both on the same starts"
        )
    return float(np.mean(returns) / np.mean(oracle_returns))


def measure_model(
    checkpoint: str,
    mpc_seeds: list[int],
    oracle_returns: list[float],
    fresh_seeds: list[int],
    max_steps: int | None = None,
) -> dict[str, Any]:
    """One latent model's held-out measures (from its export) and the demo planner's real
    episodes over it (at most ``max_steps`` steps each) on the MPC run's starts and on the
    fresh ones."""
    setting = {DEMO_SETTING: SETTINGS[DEMO_SETTING]}
    mpc = measure(checkpoint, setting, mpc_seeds, max_steps)[0]
    fresh = measure(checkpoint, setting, fresh_seeds, max_steps)[0]
    held_out = json.loads((Path(checkpoint) / "metrics.json").read_text())
    return {
        "checkpoint": checkpoint,
        "weights_sha256": world_models.weights_sha256(checkpoint),
        "end_auc_by_step": held_out["end_auc_by_step"],
        "reward_mae_by_step": held_out["reward_mae_by_step"],
        "mpc_starts": {
            **mpc,
            "oracle_share": oracle_share(mpc["returns"], oracle_returns),
        },
        "fresh_starts": fresh,
    }


@dataclass(frozen=True)
class DemoPlannerStarts:
    """The starts latent models are driven on by the MPC demo's planner, and what the
    committed model and the oracle did there: the latent MPC run's 12 (``mpc_run``, the
    oracle's returns among them) and ``make planner-risk``'s fresh ones (``committed_fresh``:
    the committed model's row under the demo's setting)."""

    mpc_run: dict[str, Any]
    fresh_seeds: list[int]
    committed_fresh: dict[str, Any]

    @classmethod
    def read(cls) -> DemoPlannerStarts:
        """From the latent MPC run's and ``make planner-risk``'s results."""
        mpc_run = json.loads((RESULTS_DIR / "mpc_latent" / "metrics.json").read_text())
        risk_run = json.loads((RESULTS_DIR / "planner_risk.json").read_text())
        first, last = risk_run["seeds"]
        committed = next(s for s in risk_run["settings"] if s["setting"] == DEMO_SETTING)
        return cls(mpc_run, list(range(first, last + 1)), committed)

    @property
    def oracle_returns(self) -> list[float]:
        """The oracle planner's returns on the MPC run's starts."""
        return list(self.mpc_run["results"]["oracle_planner"]["returns"])

    def measure(self, checkpoint: str) -> dict[str, Any]:
        """``measure_model`` of a latent checkpoint on both sets of starts."""
        return measure_model(
            checkpoint, self.mpc_run["seeds"], self.oracle_returns, self.fresh_seeds
        )

    def header(self) -> dict[str, Any]:
        """What a result names of these starts: the setting, both seed sets, the oracle's
        mean return."""
        return {
            "setting": DEMO_SETTING,
            "mpc_seeds": self.mpc_run["seeds"],
            "fresh_seeds": [self.fresh_seeds[0], self.fresh_seeds[-1]],
            "oracle_mean_return": float(np.mean(self.oracle_returns)),
        }

    def committed(self) -> dict[str, Any]:
        """The committed latent model and how its planner did on both sets of starts."""
        latent = self.mpc_run["results"]["latent_planner"]
        return {
            "checkpoint": self.mpc_run["latent_checkpoint"],
            "weights_sha256": self.mpc_run["latent_weights_sha256"],
            # the MPC run stores the crash rate of its starts, not the count
            "mpc_crashes": round(latent["crash_rate"] * len(self.mpc_run["seeds"])),
            "mpc_mean_return": latent["mean_return"],
            "mpc_oracle_share": self.mpc_run["latent_fraction_of_oracle_return"],
            "fresh_mean_return": self.committed_fresh["mean_return"],
            "fresh_crashes": self.committed_fresh["crashes"],
        }


def dyna_rounds(checkpoint: str) -> int:
    """How many Dyna rounds of planner episodes a latent model was fine-tuned on (the
    ``round_N`` folders among its extra footage)."""
    info = json.loads((world_models.checkpoint_path(checkpoint) / "config.json").read_text())
    extra = info["info"]["train_config"].get("extra_footage_dirs", [])
    return sum(Path(folder).name.startswith("round_") for folder in extra)


def main() -> None:
    """Measure every model and write experiments/results/latent_footage.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME=CHECKPOINT",
        help="a latent model to measure (repeatable; default: the six make latent-footage measures)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    models = dict(m.split("=", 1) for m in args.model) if args.model else MODELS
    torch.set_num_threads(args.threads)
    starts = DemoPlannerStarts.read()
    rows = {
        name: starts.measure(checkpoint)
        for name, checkpoint in tqdm(models.items(), desc="latent models")
    }
    committed = starts.committed()
    path = write_result(
        "latent_footage",
        {
            **starts.header(),
            "committed": {**committed, "dyna_rounds": dyna_rounds(committed["checkpoint"])},
            "models": rows,
        },
    )
    for name, row in rows.items():
        mpc, fresh = row["mpc_starts"], row["fresh_starts"]
        print(
            f"{name:38s} MPC starts {mpc['mean_return']:.2f} ({mpc['oracle_share']:.0%} of the "
            f"oracle), fresh starts {fresh['mean_return']:.2f}, {fresh['crashes']} crashes"
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
