"""Record driving footage: highway-fast driven by a mix of good and bad behaviour policies.

    python -m experiments.record episodes=480 out_dir=data/footage/driving

The mix cycles episode by episode through the policy zoo and a few biased random drivers,
so the footage covers careful driving, reckless driving and crashes.
"""

from __future__ import annotations

import hydra
import numpy as np
from omegaconf import DictConfig

from experiments.config import to_dataclass
from policies import load_driving_zoo
from wfm_sim.sources.recorder import BehaviourFn, RecorderConfig, record_footage

BIASED_RANDOM_DRIVERS: dict[str, tuple[float, ...]] = {
    "random_mostly_faster": (0.1, 0.1, 0.1, 0.6, 0.1),
    "random_mostly_slower": (0.1, 0.1, 0.1, 0.1, 0.6),
    "random_mostly_idle": (0.1, 0.6, 0.1, 0.1, 0.1),
    "random_lane_changer": (0.35, 0.1, 0.35, 0.1, 0.1),
}
"""Action distributions (LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER) of the random drivers."""


def _biased_random(probabilities: tuple[float, ...]) -> BehaviourFn:
    p = np.asarray(probabilities)

    def act(frame: np.ndarray, rng: np.random.Generator) -> int:
        return int(rng.choice(len(p), p=p))

    return act


def behaviour_mix() -> list[tuple[str, BehaviourFn]]:
    """The zoo's policies and the biased random drivers, as named behaviour functions."""
    mix: list[tuple[str, BehaviourFn]] = [(p.name, p.act) for p in load_driving_zoo()]
    mix += [(name, _biased_random(p)) for name, p in BIASED_RANDOM_DRIVERS.items()]
    return mix


@hydra.main(version_base=None, config_path="conf", config_name="record")
def main(cfg: DictConfig) -> None:
    """Record footage into ``out_dir``, resuming from the parts already there."""
    config = to_dataclass(cfg, RecorderConfig)
    out = record_footage(config, behaviour_mix())
    print(f"footage in {out}")


if __name__ == "__main__":
    main()
