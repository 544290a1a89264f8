"""Record footage: a simulator driven by a mix of good and bad behaviour policies.

    python -m experiments.record episodes=3000 out_dir=data/footage/driving
    python -m experiments.record --config-name record_robot     # MuJoCo Pusher

For driving, the mix cycles episode by episode through the policy zoo and a few biased random
drivers, so the footage covers careful driving, reckless driving and crashes. For the robot, it
cycles through a scripted pusher at several noise levels, random arm torques and a still arm.
"""

from __future__ import annotations

from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from experiments.config import to_dataclass
from policies import Policy, load_driving_zoo
from wfm_sim.sources.recorder import BehaviourFn, RecorderConfig, record_footage

BIASED_RANDOM_DRIVERS: dict[str, tuple[float, ...]] = {
    "random_mostly_faster": (0.1, 0.1, 0.1, 0.6, 0.1),
    "random_mostly_slower": (0.1, 0.1, 0.1, 0.1, 0.6),
    "random_mostly_idle": (0.1, 0.6, 0.1, 0.1, 0.1),
    "random_lane_changer": (0.35, 0.1, 0.35, 0.1, 0.1),
}
"""Action distributions (LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER) of the random drivers."""

ROBOT_EXPERT_NOISE: tuple[float, ...] = (0.0, 0.3, 1.0)
"""Gaussian action-noise levels of the scripted pushers in the robot footage."""


def _biased_random(probabilities: tuple[float, ...]) -> BehaviourFn:
    p = np.asarray(probabilities)

    def act(frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> int:
        return int(rng.choice(len(p), p=p))

    return act


def _pixel_behaviour(policy: Policy) -> BehaviourFn:
    def act(frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> int:
        return policy.act(frame, rng)

    return act


def driving_behaviours() -> list[tuple[str, BehaviourFn]]:
    """The zoo's policies and the biased random drivers, as named behaviour functions."""
    mix = [(p.name, _pixel_behaviour(p)) for p in load_driving_zoo()]
    mix += [(name, _biased_random(p)) for name, p in BIASED_RANDOM_DRIVERS.items()]
    return mix


def robot_behaviours() -> list[tuple[str, BehaviourFn]]:
    """Scripted pushers (with growing action noise), random torques and a still arm."""
    from wfm_sim.sources.pusher import pusher_expert, random_arm

    mix: list[tuple[str, BehaviourFn]] = [
        (f"expert_noise_{noise:g}", pusher_expert(noise=noise)) for noise in ROBOT_EXPERT_NOISE
    ]
    mix += [("random_arm", random_arm(1.0)), ("random_arm_small", random_arm(0.3))]
    mix += [("still", random_arm(0.0))]
    return mix


BEHAVIOUR_MIXES = {"highway": driving_behaviours, "pusher": robot_behaviours}
"""The behaviour mix each footage source is recorded with."""


@hydra.main(version_base=None, config_path="conf", config_name="record")
def main(cfg: DictConfig) -> None:
    """Record footage into ``out_dir``, resuming from the parts already there."""
    config = to_dataclass(cfg, RecorderConfig)
    if config.source not in BEHAVIOUR_MIXES:
        raise ValueError(
            f"no behaviour mix for source {config.source!r}: {sorted(BEHAVIOUR_MIXES)}"
        )
    out = record_footage(config, BEHAVIOUR_MIXES[config.source]())
    print(f"footage in {out}")


if __name__ == "__main__":
    main()
