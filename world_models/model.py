"""The world model as users load it: tokenizer + dynamics + reward/termination heads.

A checkpoint is a folder holding ``model.safetensors`` (weights only: loading runs no code),
``config.json`` (the ``WorldModelConfig``), and optionally ``starts.safetensors`` (real start
frames from held-out footage), ``salience.safetensors`` (which tokens show cars, measured on
footage: ``measure_code_salience``) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from wfm_sim.frames import coloured_patches
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.tokenizer.network import VideoTokenizer
from world_models.config import WorldModelConfig
from world_models.dynamics import LatentDynamics, known_planes
from world_models.heads import RewardEndHead
from world_models.tokenizer import FrameCoder, FrameTokenizer, PerFrameTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STARTS_FILE = "starts.safetensors"
SALIENCE_FILE = "salience.safetensors"
FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the config it is being loaded with."""


def exported_state(module: nn.Module, weights_dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``module``'s weights as a checkpoint stores them: on the CPU, contiguous, floating-point
    ones cast to ``weights_dtype`` (float16 halves a file committed to the repository; loading
    casts back to the module's float32)."""
    return {
        k: (v.to(weights_dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }


def build_frame_tokenizer(config: WorldModelConfig) -> PerFrameTokenizer:
    """The per-frame tokenizer a world model of ``config`` codes its frames with: its own
    frame autoencoder, or the tokenizer family's variant the config names."""
    family = config.family_tokenizer()
    return FrameTokenizer(config) if family is None else FrameCoder(VideoTokenizer(family))


END_READINGS = ("drawn", "expected")
"""What a world model's termination head may read (``WorldModel.imagine``)."""


def check_end_reading(end_reading: str, discrete: bool) -> None:
    """Refuse, by name, an end reading that is not one of ``END_READINGS`` or that a model
    cannot give: only a discrete (MaskGIT) world model has a belief about its next frame."""
    if end_reading not in END_READINGS:
        raise ValueError(f"end_reading must be one of {END_READINGS}, got {end_reading!r}")
    if end_reading == "expected" and not discrete:
        raise ValueError(
            "end_reading='expected' needs a discrete MaskGIT world model (backend maskgit); "
            "this one's termination head reads the drawn frame"
        )


@dataclass
class ImaginedStep:
    """One imagined transition for a batch: latent (B, C, h, w), reward (B,), end prob (B,)."""

    latent: torch.Tensor
    reward: torch.Tensor
    end_probability: torch.Tensor


def token_log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities (..., N) of a token under softmax(logits / temperature), from
    token-last logits (..., N); temperature 0 keeps the logits' scale."""
    logits = logits.float()
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1)


def draw_tokens(log_probs: torch.Tensor, uniforms: torch.Tensor | None) -> torch.Tensor:
    """Tokens (...) int64 from ``token_log_probs`` output (..., N): by inverse transform of
    ``uniforms`` (...) in [0, 1), or the most likely token when ``uniforms`` is None."""
    if uniforms is None:
        return log_probs.argmax(dim=-1)
    if uniforms.shape != log_probs.shape[:-1]:
        raise ValueError(
            f"uniforms must be {tuple(log_probs.shape[:-1])}, got {tuple(uniforms.shape)}"
        )
    cdf = log_probs.exp().cumsum(dim=-1)
    u = (uniforms.to(cdf.device, cdf.dtype) * cdf[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, u).squeeze(-1).clamp(max=log_probs.shape[-1] - 1)


def sample_tokens(
    logits: torch.Tensor, uniforms: torch.Tensor | None, temperature: float = 1.0
) -> torch.Tensor:
    """Tokens (B, h, w) int64 drawn from logits (B, N, h, w): by inverse transform of
    ``uniforms`` (B, h, w) in [0, 1) through softmax(logits / temperature), or the most likely
    token when ``uniforms`` is None or ``temperature`` is 0. One uniform per position makes a
    member's draw independent of the rest of the batch."""
    greedy = uniforms is None or temperature == 0
    log_probs = token_log_probs(logits.movedim(1, -1), temperature)
    return draw_tokens(log_probs, None if greedy else uniforms)


class WorldModel(nn.Module):
    """An action-conditioned world model over the latents of a causal frame tokenizer."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = build_frame_tokenizer(config)
        self.dynamics = LatentDynamics(config)
        self.heads = RewardEndHead(config)
        self.code_salience: torch.Tensor
        self.register_buffer("code_salience", torch.zeros(config.codebook_size), persistent=False)
        """Each token's share of patches showing a car (``measure_code_salience``), read by
        ``salient_priority``; all zeros until measured. Saved beside the weights."""
        self.salience_source: dict[str, str] = {}
        """What ``code_salience`` was measured on (the salience file's metadata)."""

    @property
    def has_salience(self) -> bool:
        """Whether ``code_salience`` has been measured (a discrete model only)."""
        return bool(self.code_salience.any())

    def require_salience(self, salient_priority: float) -> None:
        """Refuse, naming the fix, a ``salient_priority`` the model has no salience for."""
        if salient_priority and not self.has_salience:
            raise ValueError(
                "salient_priority needs the tokens' salience, which this checkpoint lacks "
                f"(no {SALIENCE_FILE}): measure it with python -m experiments.code_salience"
            )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """One frame's latent (C, h, w)."""
        size = self.config.latent_size
        return (self.config.latent_channels, size, size)

    @property
    def draw_shape(self) -> tuple[int, ...] | None:
        """Uniforms one imagined step draws its tokens from, (decode_rounds, 2, h, w); None
        for a continuous model, which draws nothing."""
        if not self.config.discrete:
            return None
        return (self.config.decode_rounds, 2, *self.latent_shape[1:])

    def imagine(
        self,
        latents: torch.Tensor,
        actions: torch.Tensor,
        uniforms: torch.Tensor | None = None,
        temperature: float = 1.0,
        end_reading: str = "drawn",
    ) -> ImaginedStep:
        """Advance a batch one step.

        latents: (B, K, C, h, w) the last K latents; actions: (B, K) the actions taken from
        them, the last being the action to imagine now. A discrete model draws the next frame's
        tokens with ``draw_next_tokens`` from ``uniforms`` (B, decode_rounds, 2, h, w) in [0, 1),
        so the caller owns the randomness; without them it takes the most likely tokens. A
        continuous model ignores both.

        ``end_reading`` says which next latent the termination head reads: ``"drawn"`` the
        frame just drawn, or (discrete models) ``"expected"`` the model's belief about it, the
        FSQ values averaged under its temperature-1 token probabilities before any position is
        decided. A draw can leave out a car the model half expects, and with it the crash; the
        belief keeps it. The reward always reads the drawn frame.
        """
        check_end_reading(end_reading, self.config.discrete)
        belief = None
        if self.config.discrete:
            tokens, belief = self._draw_next_tokens(
                latents, actions, uniforms, temperature, with_belief=end_reading == "expected"
            )
            next_latent = self.tokenizer.from_indices(tokens)
        else:
            next_latent = self.dynamics(latents, actions)
        reward, end_logit = self.heads(latents, actions, next_latent)
        if belief is not None:
            _, end_logit = self.heads(latents, actions, belief.to(next_latent.dtype))
        return ImaginedStep(next_latent, reward, torch.sigmoid(end_logit))

    def draw_next_tokens(
        self,
        latents: torch.Tensor,
        actions: torch.Tensor,
        uniforms: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """The next frame's tokens (B, h, w) int64, drawn in ``decode_rounds`` rounds
        (MaskGIT): each round draws every undecided position (inverse transform of
        ``uniforms[:, round, 0]``, or the most likely token without uniforms) and keeps the
        most confident draws (their log-probability plus ``selection_noise``-scaled Gumbel
        noise from ``uniforms[:, round, 1]``, and the ``salient_priority`` of car tokens), so
        that after round r a fraction
        1 - cos(pi/2 (r+1)/R) of the frame is decided and every later draw sees it. Drawing
        all positions at once instead (``decode_rounds=1``) makes an uncertain car come out as
        scattered fragments."""
        return self._draw_next_tokens(latents, actions, uniforms, temperature)[0]

    def _draw_next_tokens(
        self,
        latents: torch.Tensor,
        actions: torch.Tensor,
        uniforms: torch.Tensor | None,
        temperature: float,
        with_belief: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``draw_next_tokens``'s tokens (B, h, w) and, ``with_belief``, from its first round
        (every position open) the expected next latent (B, C, h, w) under temperature-1 token
        probabilities (else None)."""
        rounds = self.config.decode_rounds
        belief = None
        b, _, _, h, w = latents.shape
        if uniforms is not None and uniforms.shape != (b, rounds, 2, h, w):
            raise ValueError(
                f"uniforms must be (B, decode_rounds, 2, h, w) = {(b, rounds, 2, h, w)}, got "
                f"{tuple(uniforms.shape)}"
            )
        tokens = torch.zeros((b, h, w), dtype=torch.long, device=latents.device)
        known = torch.zeros((b, h, w), dtype=torch.bool, device=latents.device)
        positions = h * w
        for r in range(rounds):
            planes = known_planes(self.tokenizer.from_indices(tokens).to(latents.dtype), known)
            features = self.dynamics.token_features(latents, actions, planes)
            undecided = ~known  # logits only where the frame is still open
            logits = self.dynamics.token_logits(features[undecided])
            if r == 0 and with_belief:  # every position open: the belief about the frame
                belief = self._expected_latent(logits, (b, h, w))
            log_probs = token_log_probs(logits, temperature)
            draws = None
            if uniforms is not None and temperature != 0:
                draws = uniforms[:, r, 0][undecided]
            drawn = draw_tokens(log_probs, draws)
            tokens = tokens.masked_scatter(undecided, drawn)
            if r == rounds - 1:
                break
            confidence = torch.full((b, h, w), float("inf"), device=latents.device)
            chosen = log_probs.gather(-1, drawn[:, None])[:, 0]
            if self.config.salient_priority:
                chosen = chosen + self.config.salient_priority * self.code_salience[drawn]
            confidence = confidence.masked_scatter(undecided, chosen)
            noise = self.config.selection_noise * (1 - (r + 1) / rounds)
            if uniforms is not None and noise > 0:
                gumbel = -torch.log(-torch.log(uniforms[:, r, 1].clamp(1e-9, 1 - 1e-9)))
                confidence = confidence + noise * gumbel
            confidence = confidence.flatten(1)  # decided positions stay first (inf)
            decided = math.ceil(positions * (1 - math.cos(math.pi / 2 * (r + 1) / rounds)))
            order = confidence.argsort(dim=1, descending=True, stable=True)[:, :decided]
            known = torch.zeros_like(known).flatten(1).scatter_(1, order, True).view(b, h, w)
        return tokens, belief

    def _expected_latent(self, logits: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Token logits (B*h*w, V) of every position -> the expected latent (B, C, h, w): each
        position's FSQ values averaged under softmax(logits)."""
        vocabulary = logits.shape[-1]
        ids = torch.arange(vocabulary, device=logits.device).view(1, vocabulary, 1)
        codebook = self.tokenizer.from_indices(ids)[0, :, :, 0].T  # (V, C)
        expected = torch.softmax(logits.float(), dim=-1) @ codebook.float()
        return expected.view(*grid, -1).permute(0, 3, 1, 2)

    def save(
        self,
        folder: str | Path,
        extra_tensors: dict[str, torch.Tensor] | None = None,
        weights_dtype: torch.dtype = torch.float32,
    ) -> None:
        """Write weights and config into ``folder`` atomically (and start frames if given).

        ``weights_dtype`` float16 halves the file (for checkpoints committed to the repository);
        loading casts the weights back to float32.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(
                exported_state(self, weights_dtype),
                str(tmp),
                metadata={"format_version": str(FORMAT_VERSION)},
            )
        write_json_atomic(
            folder / CONFIG_FILE,
            {"format_version": FORMAT_VERSION, "world_model": self.config.to_dict()},
        )
        if extra_tensors:
            with atomic_path(folder / STARTS_FILE) as tmp:
                save_file({k: v.contiguous() for k, v in extra_tensors.items()}, str(tmp))
        if self.has_salience:
            self.save_salience(folder, self.salience_source)

    def save_salience(self, folder: str | Path, source: dict[str, str]) -> None:
        """Write ``code_salience`` into the checkpoint ``folder`` atomically, with ``source``
        (what it was measured on: ``footage``, ``frames``, ...) as the file's metadata."""
        with atomic_path(Path(folder) / SALIENCE_FILE) as tmp:
            tensors = {"code_salience": self.code_salience.float().cpu().contiguous()}
            save_file(tensors, str(tmp), metadata={k: str(v) for k, v in source.items()})

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        expected_config: WorldModelConfig | None = None,
    ) -> WorldModel:
        """Load a checkpoint folder; refuse one of another config with a clear error."""
        folder = Path(folder)
        config = read_config(folder)
        if expected_config is not None and config != expected_config:
            diff = {
                k: (v, expected_config.to_dict()[k])
                for k, v in config.to_dict().items()
                if expected_config.to_dict()[k] != v
            }
            raise CheckpointMismatchError(
                f"checkpoint {folder} was trained with another config: (saved, expected) {diff}"
            )
        model = cls(config)
        state = load_file(str(folder / WEIGHTS_FILE))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointMismatchError(
                f"checkpoint {folder} does not match its config.json: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}"
            )
        model.load_state_dict(state)
        salience_path = folder / SALIENCE_FILE
        if salience_path.exists():
            with safe_open(str(salience_path), "pt") as stored:
                salience = stored.get_tensor("code_salience")
                model.salience_source = dict(stored.metadata() or {})
            if salience.shape != model.code_salience.shape:
                raise CheckpointMismatchError(
                    f"{salience_path} holds {tuple(salience.shape)} token saliences; the model "
                    f"has {tuple(model.code_salience.shape)} tokens"
                )
            model.code_salience.copy_(salience)
        model.require_salience(config.salient_priority)
        return model.to(device).eval()


def measure_code_salience(
    coded: Iterable[tuple[torch.Tensor, torch.Tensor]], codebook_size: int
) -> torch.Tensor:
    """Each token's salience (codebook_size,) in [0, 1]: over ``coded`` batches of (tokens
    (B, h, w) int64, the frames (B, H, W, 3) uint8 they code), the share of the patches coded
    as that token that hold a coloured pixel (``wfm_sim.frames.coloured_patches``: a car
    rather than the grey road); 0 for a token never seen. ``salient_priority`` draws car
    tokens first by it."""
    shown = torch.zeros(codebook_size, dtype=torch.float64)
    coloured = torch.zeros(codebook_size, dtype=torch.float64)
    for tokens, frames in coded:
        cars = coloured_patches(frames.cpu(), tokens.shape[-1]).flatten().double()
        flat = tokens.flatten().cpu()
        shown.index_add_(0, flat, torch.ones_like(cars))
        coloured.index_add_(0, flat, cars)
    if not shown.any():
        raise ValueError("no frames to measure the tokens' salience on")
    return (coloured / shown.clamp(min=1)).float()


def read_config_payload(folder: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """(path, parsed content) of a checkpoint folder's config.json, every checkpoint kind's;
    a missing one raises ``FileNotFoundError`` naming ``kind`` (e.g. "a world-model")."""
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {folder} {kind} checkpoint folder?")
    payload: dict[str, Any] = json.loads(path.read_text())
    return path, payload


def read_config(folder: str | Path) -> WorldModelConfig:
    """The ``WorldModelConfig`` of a checkpoint folder."""
    path, payload = read_config_payload(folder, "a world-model")
    if payload.get("format_version") != FORMAT_VERSION:
        other = payload.get("format")
        holds = f" (it holds a {other!r} checkpoint)" if other else ""
        raise CheckpointMismatchError(
            f"{path} has format_version {payload.get('format_version')}{holds}, "
            f"this code reads world-model format_version {FORMAT_VERSION}"
        )
    return WorldModelConfig.from_dict(payload["world_model"])


def load_start_contexts(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Real start contexts stored beside a checkpoint: frames (N, K, H, W, 3) uint8 and the
    actions between them (N, K-1) int64."""
    path = Path(folder) / STARTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the checkpoint has no start contexts; pass start frames explicitly"
        )
    tensors = load_file(str(path))
    return tensors["frames"], tensors["actions"]
