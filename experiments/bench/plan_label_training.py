"""Whether training on plan labels helps the latent planner: the zoo's ``driving_latent``
fine-tuned on its footage alone (the control) and on its footage plus plan labels (real
outcomes of the candidate plans its planner weighed, played on clones of highway-env), with
a second round labelled by the planner over the first tuned model. Each drives the real env
under the MPC demo's planner on the 12 starts of the latent MPC run and on the 100 starts of
``make planner-risk``, paired start by start against the zoo model there, and each ranks the
candidates of the held-out labels (every labels folder's last part) against the simulator.

    python -m experiments.bench.plan_label_training

``make plan-label-training`` makes the labels and the models and runs this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.bench.common import paired_gain, write_result
from experiments.bench.latent_footage import DemoPlannerStarts
from experiments.mpc_demo import driving_demo_planner
from experiments.plan_labels import score_model
from wfm_sim.data.plan_labels import join_parts, part_paths
from world_models.latent import LatentWorldModel

LABEL_DIRS = ("data/plan_labels/driving", "data/plan_labels/driving_round2")
"""The labels folders: the zoo planner's (``make plan-labels``) and the second round's."""

MODELS: dict[str, str] = {
    "footage only, 1,500 more steps (the control)": "runs/latent_pl_c/checkpoint",
    "footage + the zoo planner's labels, 1,500 steps": "runs/latent_pl_a/checkpoint",
    "footage + both rounds' labels, 1,500 steps": "runs/latent_pl_b/checkpoint",
    "footage + both rounds' labels at weight 4, 3,000 steps": "runs/latent_pl_d/checkpoint",
}
"""The models ``make plan-label-training`` trains from the zoo's ``driving_latent``, by name:
their checkpoints."""


def held_out_labels() -> dict[str, np.ndarray]:
    """The last part of every labels folder (the parts the tuned models never saw)."""
    parts = []
    for folder in LABEL_DIRS:
        found = part_paths(folder)
        if len(found) < 2:
            raise FileNotFoundError(
                f"{folder} holds no held-out part: run make plan-label-training"
            )
        parts.append(found[-1])
    return join_parts(parts)


def main() -> None:
    """Measure the zoo model and every tuned one; write plan_label_training.json."""
    torch.set_num_threads(2)
    starts = DemoPlannerStarts.read()
    labels = held_out_labels()
    planner = driving_demo_planner()

    def ranks_labels(checkpoint: str) -> dict[str, Any]:
        return score_model(LatentWorldModel.load(checkpoint), labels, planner)

    rows = {}
    for name, checkpoint in tqdm(MODELS.items(), desc="tuned latent models"):
        row = starts.measure(checkpoint)
        rows[name] = {
            **row,
            "fresh_gain_over_committed": paired_gain(
                row["fresh_starts"]["returns"], starts.committed_fresh["returns"]
            ),
            "held_out_labels": ranks_labels(checkpoint),
        }
    committed = starts.committed()
    path = write_result(
        "plan_label_training",
        {
            **starts.header(),
            "label_dirs": list(LABEL_DIRS),
            "committed": {**committed, "held_out_labels": ranks_labels(committed["checkpoint"])},
            "models": rows,
        },
    )
    for name, row in rows.items():
        mpc, gain = row["mpc_starts"], row["fresh_gain_over_committed"]
        print(
            f"{name}: MPC starts {mpc['oracle_share']:.0%} of the oracle; fresh starts "
            f"{row['fresh_starts']['mean_return']:.2f} ({row['fresh_starts']['crashes']} crashes), "
            f"{gain['mean']:+.2f} ± {gain['sem']:.2f} over the zoo model"
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
