"""Train the reward and termination heads on whole imagined episodes.

The env scores every step of an episode it imagines from a real start: after a few steps the
heads see drawn frames that have drifted from the footage (a car ahead comes out fainter or
later than it was). Heads trained on one- to three-step unrolls under-predict crashes there,
so a policy that drives into traffic keeps going in imagination (a constant-action policy
earns more imagined than real return). This stage rolls out every training episode from its
first K real frames under its real actions, exactly as the env would imagine it, and fits the
heads (the dynamics frozen) to the real rewards and crash at each imagined step: a crash
probability calibrated on the states the env will actually show the heads. The episodes are
drawn at the token temperature the heads will be read at, and the same steps with their real
contexts (``real_transitions``) can join them, so the heads do not forget real frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from wfm_sim.data import Episode
from wfm_sim.io import atomic_path
from world_models import WorldModel, token_uniforms


@dataclass
class ImaginedTransitions:
    """The imagined steps of many episodes, one row per step the env would score.

    latents (N, K+1, C, h, w): the K context latents and the imagined next one; actions (N, K):
    the actions taken from the context frames (the last one leads to the next latent);
    rewards, terminated (N,): what the real episode paid and whether it crashed there.
    """

    latents: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor

    def __len__(self) -> int:
        return len(self.rewards)

    def save(self, path: Path) -> None:
        """Write atomically (safetensors), so a killed run never leaves half a bank."""
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in vars(self).items()}, str(tmp))

    @classmethod
    def load(cls, path: Path) -> ImaginedTransitions:
        """Read a bank written by ``save``."""
        return cls(**load_file(str(path)))

    @classmethod
    def concat(cls, parts: Sequence[ImaginedTransitions]) -> ImaginedTransitions:
        """One bank of the rows of ``parts``, in order."""
        return cls(**{name: torch.cat([vars(p)[name] for p in parts]) for name in vars(parts[0])})


def _episodes_with_context(episodes: Sequence[Episode], k: int) -> list[Episode]:
    """The episodes at least ``k`` steps long (a full context); none is refused."""
    usable = [e for e in episodes if e.length >= k]
    if not usable:
        raise ValueError(f"no episode lasts {k} steps: nothing to imagine from a real start")
    return usable


@torch.no_grad()
def imagine_transitions(
    model: WorldModel,
    episodes: Sequence[Episode],
    seed: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    temperature: float = 1.0,
) -> ImaginedTransitions:
    """Roll every episode (pixel frames) at least K frames long out from its first K real
    frames under its real actions, drawing each next frame as the env does at token
    ``temperature`` (episode i's draws from ``numpy.random.default_rng([seed, episode_id])``),
    and collect each imagined step with the real reward and termination of that step."""
    if model.config.continuous_actions:
        raise ValueError("imagined head training supports discrete-action world models")
    k = model.config.context
    usable = sorted(_episodes_with_context(episodes, k), key=lambda e: e.length)
    model = model.eval().to(device)
    bar = tqdm(total=sum(e.length - k + 1 for e in usable), desc="imagining episodes", unit="step")
    groups = []
    for first in range(0, len(usable), batch_size):
        group = usable[first : first + batch_size]
        groups.append(_imagine_group(model, group, seed, device, temperature))
        bar.update(sum(e.length - k + 1 for e in group))
    bar.close()
    return ImaginedTransitions.concat([ImaginedTransitions(**g) for g in groups])


def _imagine_group(
    model: WorldModel,
    group: Sequence[Episode],
    seed: int,
    device: torch.device | str,
    temperature: float,
) -> dict[str, torch.Tensor]:
    k = model.config.context
    rngs: list[np.random.Generator | None] = [
        np.random.default_rng([seed, e.episode_id]) for e in group
    ]
    start = torch.from_numpy(np.stack([e.frames[:k] for e in group])).to(device)
    window = model.tokenizer.encode(start.flatten(0, 1)).unflatten(0, (len(group), k))
    longest = max(e.length for e in group)
    actions = np.zeros((len(group), longest), dtype=np.int64)
    rewards = np.zeros((len(group), longest), dtype=np.float32)
    ended = np.zeros((len(group), longest), dtype=bool)
    for i, episode in enumerate(group):
        actions[i, : episode.length] = episode.actions
        rewards[i, : episode.length] = episode.rewards
        ended[i, : episode.length] = episode.terminated
    lengths = np.array([e.length for e in group])
    rows: dict[str, list[torch.Tensor]] = {
        n: [] for n in ("latents", "actions", "rewards", "terminated")
    }
    for t in range(k - 1, longest):
        live = torch.from_numpy(t < lengths)
        step_actions = torch.from_numpy(actions[:, t - k + 1 : t + 1]).to(device)
        uniforms = token_uniforms(model, rngs)
        if uniforms is not None:
            uniforms = uniforms.to(device)
        imagined = model.imagine(window, step_actions, uniforms, temperature)
        rows["latents"].append(torch.cat([window, imagined.latent[:, None]], dim=1).cpu()[live])
        rows["actions"].append(step_actions.cpu()[live])
        rows["rewards"].append(torch.from_numpy(rewards[:, t])[live])
        rows["terminated"].append(torch.from_numpy(ended[:, t])[live])
        window = torch.cat([window[:, 1:], imagined.latent[:, None]], dim=1)
    return {name: torch.cat(values) for name, values in rows.items()}


@torch.no_grad()
def real_transitions(
    model: WorldModel, episodes: Sequence[Episode], device: torch.device | str = "cpu"
) -> ImaginedTransitions:
    """The same rows as ``imagine_transitions`` with every latent coded from the real frames
    (teacher-forced): mixed into the heads' last stage, they keep the heads firing on real
    frames while they learn the imagined ones."""
    k = model.config.context
    usable = _episodes_with_context(episodes, k)
    model = model.eval().to(device)
    rows: dict[str, list[torch.Tensor]] = {
        n: [] for n in ("latents", "actions", "rewards", "terminated")
    }
    for episode in tqdm(usable, desc="coding real transitions", unit="episode", leave=False):
        latents = model.tokenizer.encode(torch.from_numpy(episode.frames).to(device)).cpu()
        last = torch.arange(k - 1, episode.length)  # the step each row scores
        rows["latents"].append(latents[last[:, None] + torch.arange(-k + 1, 2)])
        actions = torch.from_numpy(np.asarray(episode.actions, dtype=np.int64))
        rows["actions"].append(actions[last[:, None] + torch.arange(-k + 1, 1)])
        rows["rewards"].append(torch.from_numpy(np.asarray(episode.rewards, np.float32))[last])
        rows["terminated"].append(torch.from_numpy(np.asarray(episode.terminated, bool))[last])
    return ImaginedTransitions(**{name: torch.cat(values) for name, values in rows.items()})


def imagined_heads_loss(
    model: WorldModel,
    bank: ImaginedTransitions,
    index: np.ndarray,
    end_pos_weight: float,
    end_loss_weight: float,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """The heads' reward (squared error) and end (class-weighted BCE) losses on the bank's
    rows ``index``, and their weighted sum under ``"loss"``."""
    rows = torch.from_numpy(index)
    latents = bank.latents[rows].to(device)
    reward, end_logit = model.heads(latents[:, :-1], bank.actions[rows].to(device), latents[:, -1])
    reward_loss = (reward - bank.rewards[rows].to(device)).square().mean()
    end_loss = F.binary_cross_entropy_with_logits(
        end_logit,
        bank.terminated[rows].to(device).float(),
        pos_weight=torch.tensor(end_pos_weight, device=end_logit.device),
    )
    return {
        "loss": reward_loss + end_loss_weight * end_loss,
        "reward": reward_loss,
        "end": end_loss,
    }


@torch.no_grad()
def score_heads_on_imagination(
    model: WorldModel, bank: ImaginedTransitions, batch_size: int = 512
) -> dict[str, float]:
    """How the heads do on imagined episodes (a bank of held-out ones): reward mean absolute
    error, the mean crash probability against the real crash rate (equal when calibrated:
    imagined episodes then last as long as real ones, on average), the Brier score, and the
    AUC (how well the probability ranks the steps that really crashed above the rest)."""
    rewards, probabilities = [], []
    for first in range(0, len(bank), batch_size):
        latents = bank.latents[first : first + batch_size]
        reward, end_logit = model.heads(
            latents[:, :-1], bank.actions[first : first + batch_size], latents[:, -1]
        )
        rewards.append(reward.float())
        probabilities.append(torch.sigmoid(end_logit.float()))
    p = torch.cat(probabilities).double().numpy()
    ended = bank.terminated.numpy()
    return {
        "imagined_reward_mae": float((torch.cat(rewards) - bank.rewards).abs().mean()),
        "imagined_end_rate": float(ended.mean()),
        "imagined_end_mean_probability": float(p.mean()),
        "imagined_end_brier": float(((p - ended) ** 2).mean()),
        "imagined_end_auc": roc_auc(p, ended),
        "imagined_transitions": len(bank),
    }


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half);
    NaN without both classes."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
