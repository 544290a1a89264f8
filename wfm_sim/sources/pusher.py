"""The real robot simulator: Gymnasium's MuJoCo ``Pusher-v5`` seen through an RGB camera.

A 7-joint arm pushes a white cylinder to a red goal on a grey table. The observation is the
rendered frame, optionally from a camera that moves smoothly during each episode, so the same
pixel policies run in the real simulator and in a world model trained on its footage. The
ground truth (fingertip, object, goal, camera pose, reward terms, the 23-d state) rides along
in ``info`` for recording and for the scripted pusher, which acts from ``info["state"]`` alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import gymnasium.envs.mujoco
import mujoco
import numpy as np

ROBOT_GROUND_TRUTH: tuple[str, ...] = (
    "tip_x",
    "tip_y",
    "tip_z",
    "object_x",
    "object_y",
    "goal_x",
    "goal_y",
    "cam_azimuth",
    "cam_elevation",
    "cam_distance",
    "reward_dist",
    "reward_near",
    "reward_ctrl",
)
"""Scalar ground truth in every ``info`` (python floats): positions in metres (world frame),
the camera pose the frame was rendered from (degrees, metres) and Pusher's reward terms."""

Behaviour = Callable[[np.ndarray, dict[str, Any], np.random.Generator], np.ndarray]
"""A robot behaviour: (frame (H, W, 3) uint8, the frame's info, rng) -> torques (7,) float32."""

ACTION_LIMIT = 2.0
"""Pusher's torque limit: actions lie in ``Box(-2, 2, (7,), float32)``."""


@dataclass
class RobotSimConfig:
    """Camera and rendering settings of the real robot simulator.

    The default camera looks down at 60 degrees from the arm's side of the table, 1.6 m from a
    point between the arm and the goal, so the arm, the object and the goal all stay in view.
    With ``moving_camera`` each episode draws a smooth camera path whose azimuth, elevation and
    distance stay inside the ``*_range`` bounds (``lookat`` stays fixed); each follows a sine
    whose phase advances by a per-episode speed drawn from ``camera_speed_range`` (radians per
    step: 0.01-0.03 is a slow pan, 0.05-0.15 sweeps tens of degrees within a second). With
    ``camera_turn_steps`` ``[low, high]`` the speeds (and their signs) are drawn again every
    ``low``-``high`` steps, so the camera turns back and forth in an episode and its motion
    in a few frames does not tell where it goes next; empty keeps one speed per episode.
    """

    env_id: str = "Pusher-v5"
    frame_size: int = 64
    azimuth: float = 90.0
    elevation: float = -60.0
    distance: float = 1.6
    lookat: list[float] = field(default_factory=lambda: [0.3, -0.3, 0.0])
    moving_camera: bool = False
    azimuth_range: list[float] = field(default_factory=lambda: [70.0, 110.0])
    elevation_range: list[float] = field(default_factory=lambda: [-78.0, -56.0])
    distance_range: list[float] = field(default_factory=lambda: [1.45, 1.8])
    camera_speed_range: list[float] = field(default_factory=lambda: [0.01, 0.03])
    camera_turn_steps: list[int] = field(default_factory=list)

    def camera_config(self) -> dict[str, Any]:
        """The fixed camera as Gymnasium's MuJoCo ``default_camera_config``."""
        return {
            "azimuth": float(self.azimuth),
            "elevation": float(self.elevation),
            "distance": float(self.distance),
            "lookat": np.asarray(self.lookat, dtype=np.float64),
            "trackbodyid": -1,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored beside footage and checkpoints."""
        return dataclasses.asdict(self)


class RobotPixelObservation(gym.ObservationWrapper):
    """Replace Pusher's 23-d observation with its rendered RGB frame, (S, S, 3) uint8.

    | Space       | Value                                                           |
    |-------------|-----------------------------------------------------------------|
    | observation | ``Box(0, 255, (S, S, 3), uint8)``: the camera frame             |
    | action      | Pusher's ``Box(-2, 2, (7,), float32)``: joint torques           |
    | reward      | Pusher's: ``reward_dist + reward_near + reward_ctrl`` (float)   |
    | end         | never terminates; truncated after 100 steps (Pusher's limit)    |

    ``info`` on reset and step holds every ``ROBOT_GROUND_TRUTH`` key and ``"state"``, Pusher's
    observation (23,) float64: joint angles (7), joint velocities (7), fingertip, object and goal
    positions (3 each). On reset the reward terms are those of the start state (no control).

    The camera: fixed at the config's pose, or (``moving_camera``) per episode a random start
    pose and a sinusoidal drift of azimuth, elevation and distance inside their ranges,
    drawn from ``np_random`` after Pusher's own reset, so ``reset(seed=s)`` fixes both the scene
    and the camera path.
    """

    def __init__(self, env: gym.Env, config: RobotSimConfig) -> None:
        super().__init__(env)
        size = config.frame_size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.config = config
        self._lookat = np.asarray(config.lookat, dtype=np.float64)
        self._step = 0
        # Per camera parameter (azimuth, elevation, distance): phase and angular speed of
        # value(t) = low + (high - low) * (1 + sin(phase + speed * t)) / 2.
        self._phase = np.zeros(3)
        self._speed = np.zeros(3)
        # With turns, the phase run up by earlier legs, the step the current leg began at and
        # the step the next one begins at.
        self._leg_phase = np.zeros(3)
        self._leg_start = 0
        self._next_turn = -1
        self._ranges = np.array(
            [config.azimuth_range, config.elevation_range, config.distance_range], dtype=np.float64
        )
        if self._ranges.shape != (3, 2) or (self._ranges[:, 0] > self._ranges[:, 1]).any():
            raise ValueError(
                "azimuth_range, elevation_range and distance_range must each be [low, high] "
                f"with low <= high; got {self._ranges.tolist()}"
            )
        self._speed_range = np.asarray(config.camera_speed_range, dtype=np.float64)
        if self._speed_range.shape != (2,) or not 0 <= self._speed_range[0] <= self._speed_range[1]:
            raise ValueError(
                "camera_speed_range must be [low, high] radians per step with 0 <= low <= high; "
                f"got {config.camera_speed_range}"
            )
        turns = list(config.camera_turn_steps)
        if turns and (len(turns) != 2 or not 1 <= turns[0] <= turns[1]):
            raise ValueError(
                "camera_turn_steps must be empty or [low, high] steps with 1 <= low <= high; "
                f"got {config.camera_turn_steps}"
            )
        self._turn_steps = turns

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        state, info = self.env.reset(seed=seed, options=options)
        self._step = 0
        if self.config.moving_camera:
            # A smooth path, never a jump: the default 0.01-0.03 rad per step drifts one to
            # three radians of phase over a 100-step episode.
            self._phase = self.np_random.uniform(0.0, 2 * np.pi, 3)
            self._speed = self._draw_speed()
            self._leg_phase = np.zeros(3)
            self._leg_start = 0
            self._next_turn = self._draw_turn()
        frame = self.observation(state)
        return frame, {**info, **self.ground_truth(state, info)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        state, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        if self._step == self._next_turn:
            self._leg_phase += self._speed * (self._step - self._leg_start)
            self._leg_start = self._step
            self._speed = self._draw_speed()
            self._next_turn = self._draw_turn()
        frame = self.observation(state)
        return (
            frame,
            float(reward),
            terminated,
            truncated,
            {**info, **self.ground_truth(state, info)},
        )

    def camera_pose(self) -> tuple[float, float, float]:
        """(azimuth, elevation, distance) of the current frame's camera, degrees and metres."""
        if not self.config.moving_camera:
            return (
                float(self.config.azimuth),
                float(self.config.elevation),
                float(self.config.distance),
            )
        leg = self._step - self._leg_start
        wave = 0.5 * (1.0 + np.sin(self._phase + self._leg_phase + self._speed * leg))
        low, high = self._ranges[:, 0], self._ranges[:, 1]
        azimuth, elevation, distance = low + (high - low) * wave
        return float(azimuth), float(elevation), float(distance)

    def _draw_speed(self) -> np.ndarray:
        low, high = self._speed_range
        return self.np_random.uniform(low, high, 3) * self.np_random.choice([-1, 1], 3)

    def _draw_turn(self) -> int:
        """The step of the next turn (-1: none)."""
        if not self._turn_steps:
            return -1
        low, high = self._turn_steps
        return self._step + int(self.np_random.integers(low, high + 1))

    def observation(self, observation: Any) -> np.ndarray:
        return self.render_from(*self.camera_pose())

    def render_from(self, azimuth: float, elevation: float, distance: float) -> np.ndarray:
        """The current scene drawn from the camera pose given (degrees, degrees, metres),
        (S, S, 3) uint8; the episode's own camera path is left as it is, so the same physics
        can be seen from camera paths it was not recorded along."""
        camera = self._camera()
        camera.azimuth, camera.elevation, camera.distance = azimuth, elevation, distance
        camera.lookat[:] = self._lookat
        frame = self.env.render()
        assert frame is not None, "Pusher returned no frame; render_mode must be rgb_array"
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def ground_truth(self, state: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        """The ``ROBOT_GROUND_TRUTH`` values and ``"state"`` of the current frame."""
        pusher = self.env.unwrapped
        tip = pusher.get_body_com("tips_arm")  # type: ignore[attr-defined]
        obj = pusher.get_body_com("object")  # type: ignore[attr-defined]
        goal = pusher.get_body_com("goal")  # type: ignore[attr-defined]
        if "reward_dist" not in info:  # reset: Pusher's reward terms of the start state
            _, info = pusher._get_rew(np.zeros(7))  # type: ignore[attr-defined]
        azimuth, elevation, distance = self.camera_pose()
        return {
            "tip_x": float(tip[0]),
            "tip_y": float(tip[1]),
            "tip_z": float(tip[2]),
            "object_x": float(obj[0]),
            "object_y": float(obj[1]),
            "goal_x": float(goal[0]),
            "goal_y": float(goal[1]),
            "cam_azimuth": azimuth,
            "cam_elevation": elevation,
            "cam_distance": distance,
            "reward_dist": float(info["reward_dist"]),
            "reward_near": float(info["reward_near"]),
            "reward_ctrl": float(info["reward_ctrl"]),
            "state": np.array(state, dtype=np.float64),
        }

    def _camera(self) -> mujoco.MjvCamera:
        # Gymnasium's MujocoRenderer has no public camera setter; its off-screen viewer's free
        # camera is the one every rgb_array frame is drawn from.
        renderer = self.env.unwrapped.mujoco_renderer  # type: ignore[attr-defined]
        return renderer._get_viewer("rgb_array").cam


def make_robot_env(config: RobotSimConfig | None = None) -> gym.Env:
    """The real Pusher simulator with (S, S, 3) uint8 frames as observations."""
    config = config or RobotSimConfig()
    env = gym.make(
        config.env_id,
        render_mode="rgb_array",
        width=config.frame_size,
        height=config.frame_size,
        default_camera_config=config.camera_config(),
    )
    return RobotPixelObservation(env, config)


def random_arm(scale: float = 1.0) -> Behaviour:
    """Uniform random torques in ``scale * [-2, 2]`` per joint; ``scale=0`` is a still arm."""
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"random_arm scale {scale} is outside [0, 1] (a fraction of the limit)")

    def act(frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        return (scale * ACTION_LIMIT * rng.uniform(-1.0, 1.0, 7)).astype(np.float32)

    return act


# --- The scripted pusher --------------------------------------------------------------------
# Geometry of pusher_v5.xml. The fingertip body ("tips_arm") sits at the middle of a U-shaped
# gripper: a crossbar along its local y (+-0.1 m) and two prongs 0.1 m along its local x, all
# capsules of radius 0.02, the only arm parts that collide. The object is a cylinder of radius
# 0.05 whose centre is 0.275 m below the shoulder, 0.05 m above the table.
_SHOULDER_XY = np.array([0.0, -0.6])
_CROSSBAR_CONTACT = 0.07
"""Object centre ahead of the fingertip (along the gripper's x) at which the crossbar touches."""
_PRONG_CONTACT = 0.03
"""Object centre beside the fingertip (along the gripper's y) at which a prong touches."""
_MOUTH = 0.09
"""Object centre ahead of the fingertip when the U is lowered around it."""
_PUSH_HEIGHT = -0.275
_CLEAR_HEIGHT = -0.18
"""Fingertip height at which the U passes over the object (its top is at -0.225)."""


class _ArmModel:
    """Kinematics of Pusher's arm on a private ``MjData``, so the controller never touches the env.

    Joint angles come from ``info["state"]``; the model is read from Gymnasium's own
    ``pusher_v5.xml``.
    """

    def __init__(self) -> None:
        xml = Path(gymnasium.envs.mujoco.__file__).parent / "assets" / "pusher_v5.xml"
        self.model = mujoco.MjModel.from_xml_path(str(xml))
        self.data = mujoco.MjData(self.model)
        self.tip = self.model.body("tips_arm").id
        self.low = self.model.jnt_range[:7, 0].copy()
        self.high = self.model.jnt_range[:7, 1].copy()
        self.damping = self.model.dof_damping[:7].copy()
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        self._mass = np.zeros((self.model.nv, self.model.nv))
        # Start postures for a fresh IK solve: the arm straight out, and a seeded spread over
        # the joint ranges (near the shoulder only a rolled upper arm reaches the table).
        spread = np.random.default_rng(0).uniform(self.low, self.high, (6, 7))
        self.starts = np.vstack([np.zeros(7), spread])

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fingertip position (3,) and orientation (3, 3) at joint angles ``q`` (7,)."""
        self.data.qpos[:7] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_jacBody(self.model, self.data, self._jacp, self._jacr, self.tip)
        return self.data.xpos[self.tip].copy(), self.data.xmat[self.tip].reshape(3, 3).copy()

    def ik(
        self, q: np.ndarray, target: np.ndarray, heading: np.ndarray, iters: int, w_rot: float
    ) -> np.ndarray:
        """Damped least squares from ``q``: fingertip at ``target`` (3,), gripper x pointing
        along ``heading`` (2,) in the table plane, crossbar level; clipped to joint limits."""
        q = q.copy()
        for _ in range(iters):
            position, rotation = self.forward(q)
            error = np.concatenate([target - position, w_rot * _rotation_error(rotation, heading)])
            jac = np.vstack([self._jacp[:, :7], w_rot * self._jacr[:, :7]])
            step = jac.T @ np.linalg.solve(jac @ jac.T + 0.05**2 * np.eye(6), error)
            q = np.clip(q + step, self.low, self.high)
        return q

    def cost(self, q: np.ndarray, target: np.ndarray, heading: np.ndarray, w_rot: float) -> float:
        """Position error plus weighted orientation error of posture ``q``."""
        position, rotation = self.forward(q)
        rotation_error = float(np.linalg.norm(_rotation_error(rotation, heading)))
        return float(np.linalg.norm(target - position)) + w_rot * rotation_error

    def solve(self, target: np.ndarray, heading: np.ndarray, w_rot: float) -> np.ndarray:
        """The best posture for ``target`` over all start postures: the same answer for the same
        target whatever the arm does now, so the arm does not hop between IK branches."""
        best, best_cost = self.starts[0], np.inf
        for weight in (w_rot, 0.1 * w_rot):  # position first where the heading is out of reach
            for start in self.starts:
                q = self.ik(start, target, heading, 40, weight)
                miss = float(np.linalg.norm(self.forward(q)[0] - target))
                cost = self.cost(q, target, heading, w_rot) + 3.0 * max(miss - 0.01, 0.0)
                if cost < best_cost - 1e-3:
                    best, best_cost = q, cost
            if np.linalg.norm(self.forward(best)[0] - target) < 0.01:
                break
        return best

    def torque(
        self, q: np.ndarray, qvel: np.ndarray, q_target: np.ndarray, omega: float
    ) -> np.ndarray:
        """Computed-torque PD: every joint a critically damped spring of frequency ``omega``."""
        self.data.qpos[:7] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_crb(self.model, self.data)
        mujoco.mj_fullM(self.model, self.data, self._mass)
        acceleration = omega**2 * (q_target - q) - 2.0 * omega * qvel
        return self._mass[:7, :7] @ acceleration + self.damping * qvel

    def gripper_axes(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gripper's x and y axes projected on the table, unit (2,) each."""
        _, rotation = self.forward(q)
        x = rotation[:2, 0] / max(float(np.linalg.norm(rotation[:2, 0])), 1e-9)
        return x, np.array([-x[1], x[0]])


def _rotation_error(rotation: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Rotation (3,) that turns the gripper's x toward ``heading`` about the vertical and
    levels its crossbar; pitch is free (near the shoulder the U can only be reached tilted)."""
    x, y = rotation[:, 0], rotation[:, 1]
    x_flat = x[:2] / max(float(np.linalg.norm(x[:2])), 1e-9)
    yaw = x_flat[0] * heading[1] - x_flat[1] * heading[0]
    y_level = np.array([y[0], y[1], 0.0])
    y_level /= max(float(np.linalg.norm(y_level)), 1e-9)
    return np.array([0.0, 0.0, yaw]) + np.cross(y, y_level)


class _PusherExpert:
    """Lower the U-shaped gripper around the object, then push it into the goal.

    Each step, from ``info["state"]`` only (no memory, so it never needs a reset):

    1. heading: the gripper's x is the push direction turned toward the arm's radial direction
       by up to ``max_turn`` (pushes across the arm use a prong, which keeps it reachable);
    2. if the object is inside the U and the U is down, push: aim the fingertip so the object
       presses ``push_depth`` into the crossbar and prong in proportion to the push direction.
       Pusher's object weighs 8 mg, and MuJoCo softens contacts by the bodies' weights, so
       the object gives way: its speed grows with the penetration (~0.05 m/s at the default);
    3. else fly the U above the object at ``_CLEAR_HEIGHT`` and lower it around the object.

    Postures come from damped-least-squares IK on a private copy of the model, tracked by a
    computed-torque PD whose torques are capped at ``max_torque``, then noised and clipped to
    [-2, 2].
    """

    def __init__(
        self,
        noise: float,
        push_depth: float,
        stiffness: float,
        max_turn_deg: float,
        max_torque: float,
    ) -> None:
        self.noise = noise
        self.max_torque = max_torque
        self.push_depth = push_depth
        self.stiffness = stiffness
        self.max_turn = np.deg2rad(max_turn_deg)
        self.w_rot = 0.15
        self.arm = _ArmModel()

    def __call__(
        self, frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator
    ) -> np.ndarray:
        state = np.asarray(info["state"], dtype=np.float64)
        if state.shape != (23,):
            raise ValueError(f"info['state'] must be Pusher's (23,) observation, got {state.shape}")
        q, qvel, tip = state[:7], state[7:14], state[14:17]
        obj, goal = state[17:19], state[20:22]
        torque = self.arm.torque(q, qvel, self.target_posture(q, tip, obj, goal), self.stiffness)
        torque = np.clip(torque, -self.max_torque, self.max_torque)
        if self.noise > 0:
            torque = torque + rng.normal(0.0, self.noise, 7)
        return np.clip(torque, -ACTION_LIMIT, ACTION_LIMIT).astype(np.float32)

    def heading(self, obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The gripper's desired x in the table plane, (2,) unit."""
        push, radial = goal - obj, obj - _SHOULDER_XY
        push_angle = np.arctan2(push[1], push[0])
        turn = (np.arctan2(radial[1], radial[0]) - push_angle + np.pi) % (2 * np.pi) - np.pi
        angle = push_angle + np.clip(turn, -self.max_turn, self.max_turn)
        return np.array([np.cos(angle), np.sin(angle)])

    def target_posture(
        self, q: np.ndarray, tip: np.ndarray, obj: np.ndarray, goal: np.ndarray
    ) -> np.ndarray:
        """Joint angles (7,) the arm should move to now."""
        heading = self.heading(obj, goal)
        x, y = self.arm.gripper_axes(q)
        ahead, beside = (obj - tip[:2]) @ x, (obj - tip[:2]) @ y
        inside = -0.03 < ahead < 0.14 and abs(beside) < 0.105
        to_goal = goal - obj
        distance = float(np.linalg.norm(to_goal))
        if inside and tip[2] < -0.245:
            push = to_goal / max(distance, 1e-9)
            along, across = float(push @ x), float(push @ y)
            depth = self.push_depth * min(1.0, distance / 0.03)  # ease off at the goal
            scale = depth / max(along, abs(across), 1e-9)
            ahead_goal = _CROSSBAR_CONTACT - scale * along if along > 0 else ahead
            press = scale * abs(across)
            if press > 1e-3:
                beside_goal = -np.sign(across) * (_PRONG_CONTACT + press)
            else:
                beside_goal = float(np.clip(beside, -_PRONG_CONTACT, _PRONG_CONTACT))
            target = obj - ahead_goal * x - beside_goal * y
            return self.arm.ik(q, np.array([*target, _PUSH_HEIGHT]), heading, 20, self.w_rot)
        mouth = obj - _MOUTH * heading
        low = self.arm.solve(np.array([*mouth, _PUSH_HEIGHT]), heading, self.w_rot)
        if np.linalg.norm(tip[:2] - mouth) < 0.03 or (inside and tip[2] < _CLEAR_HEIGHT + 0.02):
            if np.abs(q - low).max() < 0.3:  # same IK branch: refine from where the arm is
                return self.arm.ik(q, np.array([*mouth, _PUSH_HEIGHT]), heading, 20, self.w_rot)
            return low
        return self.arm.ik(low, np.array([*mouth, _CLEAR_HEIGHT]), heading, 20, self.w_rot)


def pusher_expert(
    noise: float = 0.0,
    *,
    push_depth: float = 0.075,
    stiffness: float = 7.0,
    max_turn_deg: float = 45.0,
    max_torque: float = 1.5,
) -> Behaviour:
    """A scripted pusher that moves Pusher's object to the goal, from ``info["state"]``.

    ``noise`` is the std of Gaussian noise added to its torques (then clipped to [-2, 2]);
    ``push_depth`` (m) how far it presses into the object (faster, but past ~0.08 the gripper
    slides through it); ``stiffness`` (rad/s) the PD's natural frequency; ``max_turn_deg`` how
    far the gripper may turn from the push direction toward the arm's reach; ``max_torque``
    caps its own torques below Pusher's 2 (Pusher charges 0.1 * sum(torque**2) per step, so a
    gentler arm earns more reward at a small cost in speed).
    """
    if noise < 0:
        raise ValueError(f"pusher_expert noise {noise} must be >= 0 (a torque std)")
    if not 0 < max_torque <= ACTION_LIMIT:
        raise ValueError(f"pusher_expert max_torque {max_torque} must be in (0, {ACTION_LIMIT}]")
    return _PusherExpert(noise, push_depth, stiffness, max_turn_deg, max_torque)
