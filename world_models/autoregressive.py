"""The autoregressive world model: a GPT over the FSQ tokens of a discrete (DV) video tokenizer.

A clip of ``frames`` latent frames is a sequence of frames x latent_size^2 token ids (each in
[0, prod(fsq_levels)), from ``VideoTokenizer.encode_indices``): raster order inside a frame,
frames in time order. A causal transformer predicts each token from the ones before it;
position embeddings are learned per frame and per spatial cell. Conditioning, all optional:

- **context** (Video2World): the tokens of the first K frames, given; the rest is generated.
- **text** (Video2World): a 384-d caption embedding (``wfm_sim.curation.embed.TextEmbedder``)
  projected to ``text_tokens`` memory tokens that every block cross-attends to. A pre-trained
  (unconditioned) model gains these layers with ``with_text_conditioning``: their output
  projections start at zero, so the copy predicts exactly what the original did until trained.
  ``None`` text, or a ``text_keep`` of False, uses a learned null embedding, which
  classifier-free guidance contrasts against (training drops captions at random for this).
- **frame_cond** (for action post-training): a vector per latent frame (B, T,
  ``frame_cond_dim``), added through a zero-initialised projection to the inputs of the
  positions that predict that frame's tokens (``with_frame_conditioning``).

Layout of a pass: input position i holds the token of position i - 1 (a BOS id for i = 0) plus
the embeddings of position i, so the output at i is the distribution of token i given the
tokens before it: ``forward(tokens)`` gives logits (B, P, V) aligned with ``tokens`` (B, P).
Hence logits at i depend only on tokens < i, and the tokens of frame t only on frames < t,
their own frame's earlier cells, the text and frame_cond of frames <= t.

Decoding is incremental: a ``KVCache`` keeps every block's keys and values, so each new token
costs one position's pass instead of a pass over the whole prefix (``sample(...,
use_cache=False)`` recomputes everything, for comparison). Tokens are drawn with temperature /
top-k from a ``torch.Generator``, so a seed fixes the clip.

A clip has a fixed length (``frames``); a longer video is generated window by window, as with
the diffusion model: decode the last window, re-encode its last 1 + tc * (K - 1) frames with
the tokenizer (so the context starts with an image latent, as in training) and pass their
tokens as the next window's context.

    model = load_autoregressive("runs/autoregressive/dv_4x8x8/checkpoints/video2world")
    tokens = sample(model, batch=4, sampling=SamplingConfig(top_k=50), context=first_frames,
                    text=captions, generator=torch.Generator().manual_seed(0))  # (4, T, 8, 8)
    video = tokenizer.decode_indices(tokens)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wfm_sim.curation.embed import TEXT_DIM
from wfm_sim.plain_data import require_known_keys
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from world_models.checkpoint_folder import (
    load_weights,
    read_checkpoint,
    refuse_other_config,
    write_checkpoint,
)

FORMAT = "wfm_sim.autoregressive/1"


@dataclass
class AutoregressiveConfig:
    """Shape of the token clip and of the transformer.

    A clip is ``frames`` latent frames of ``latent_size`` x ``latent_size`` tokens from a
    vocabulary of ``vocab_size`` ids (the tokenizer's prod(fsq_levels); with dv_4x8x8 at 64x64,
    5 latent frames are 17 video frames and 320 tokens). ``text_tokens`` = 0 is the
    unconditioned pre-training model; n > 0 adds cross-attention to n caption tokens.
    """

    vocab_size: int = 1000
    latent_size: int = 8
    frames: int = 5
    width: int = 128
    depth: int = 6
    heads: int = 4
    text_dim: int = TEXT_DIM
    text_tokens: int = 0
    """Memory tokens the caption embedding is projected to for cross-attention; 0 = none."""
    frame_cond_dim: int = 0
    """Size of the optional per-frame conditioning vector (actions); 0 = none."""

    def __post_init__(self) -> None:
        positive = {
            "vocab_size": self.vocab_size,
            "latent_size": self.latent_size,
            "frames": self.frames,
            "width": self.width,
            "depth": self.depth,
            "heads": self.heads,
            "text_dim": self.text_dim,
        }
        bad = {k: v for k, v in positive.items() if v < 1}
        if bad:
            raise ValueError(f"these autoregressive config fields must be >= 1: {bad}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        if self.text_tokens < 0 or self.frame_cond_dim < 0:
            raise ValueError(
                f"text_tokens and frame_cond_dim must be >= 0, got {self.text_tokens}, "
                f"{self.frame_cond_dim}"
            )

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one latent frame, latent_size^2."""
        return self.latent_size**2

    @property
    def sequence_length(self) -> int:
        """Tokens of a whole clip, frames * tokens_per_frame."""
        return self.frames * self.tokens_per_frame

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form stored in a checkpoint's config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AutoregressiveConfig:
        """Rebuild from ``to_dict`` output, refusing unknown keys with a clear message."""
        require_known_keys(cls, values, "autoregressive")
        return cls(**values)


@dataclass
class SamplingConfig:
    """How tokens are drawn from the logits: divided by ``temperature`` (0 = greedy argmax),
    restricted to the ``top_k`` most likely ids (0 = all), and with classifier-free guidance
    of strength ``guidance`` on the text (1 = none; > 1 doubles the decoded batch)."""

    temperature: float = 1.0
    top_k: int = 0
    guidance: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or self.guidance < 0:
            raise ValueError(
                f"temperature, top_k and guidance must be >= 0, got {self.temperature}, "
                f"{self.top_k}, {self.guidance}"
            )


@dataclass
class KVCache:
    """Keys and values of the ``length`` positions decoded so far, for every block:
    ``keys`` and ``values`` are (depth, B, heads, sequence_length, head_dim)."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0


def _causal_mask(start: int, count: int, device: torch.device) -> torch.Tensor | None:
    """(count, start + count) bool, True = may attend: query start + i sees keys <= start + i.
    None for a single query, which sees every cached key."""
    if count == 1:
        return None
    queries = torch.arange(start, start + count, device=device)
    return queries[:, None] >= torch.arange(start + count, device=device)[None, :]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over the positions so far, optionally through a ``KVCache``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(
        self,
        x: torch.Tensor,
        start: int,
        keys: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, n, D) inputs at positions start .. start + n - 1. keys, values: this block's
        (B, heads, L, head_dim) cache, written at those positions and read up to them; without
        a cache, start must be 0 and x the whole prefix."""
        b, n, width = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if keys is not None and values is not None:
            keys[:, :, start : start + n] = k
            values[:, :, start : start + n] = v
            k, v = keys[:, :, : start + n], values[:, :, : start + n]
        mask = _causal_mask(start, n, x.device)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(attended.transpose(1, 2).reshape(b, n, width))


class CrossAttention(nn.Module):
    """Attention from the sequence to the caption's memory tokens; ``proj`` starts at zero so
    a freshly added layer changes nothing."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """x: (B, n, D); memory: (B, M, D) -> (B, n, D)."""
        b, n, width = x.shape
        head = width // self.heads
        q = self.query(x).view(b, n, self.heads, head).transpose(1, 2)
        k, v = self.key_value(memory).view(b, -1, 2, self.heads, head).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(b, n, width))


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, cross-attention to the caption
    (text-conditioned models only), MLP."""

    def __init__(self, width: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.norm_cross = nn.LayerNorm(width) if cross else None
        self.cross = CrossAttention(width, heads) if cross else None
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width)
        )

    def forward(
        self,
        h: torch.Tensor,
        start: int,
        keys: torch.Tensor | None,
        values: torch.Tensor | None,
        memory: torch.Tensor | None,
    ) -> torch.Tensor:
        """h: (B, n, D) at positions start ..; memory: (B, M, D) caption tokens or None."""
        h = h + self.attn(self.norm1(h), start, keys, values)
        if self.cross is not None and self.norm_cross is not None and memory is not None:
            h = h + self.cross(self.norm_cross(h), memory)
        return h + self.mlp(self.norm2(h))


class AutoregressiveWorldModel(nn.Module):
    """GPT over token clips; see the module docstring for the layout and conditioning.

    ``forward`` scores whole (prefixes of) sequences; ``extend`` runs new positions through a
    ``KVCache`` (``sample``, the module function, decodes with it).
    """

    def __init__(self, config: AutoregressiveConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        self.token_embed = nn.Embedding(config.vocab_size + 1, d)  # the last id is BOS
        self.pos_space = nn.Parameter(torch.randn(config.tokens_per_frame, d) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(config.frames, d) * 0.02)
        self.frame_embed = (
            nn.Linear(config.frame_cond_dim, d) if config.frame_cond_dim > 0 else None
        )
        cross = config.text_tokens > 0
        self.null_text = nn.Parameter(torch.zeros(config.text_dim)) if cross else None
        self.text_embed = nn.Linear(config.text_dim, config.text_tokens * d) if cross else None
        self.text_norm = nn.LayerNorm(d) if cross else None
        self.blocks = nn.ModuleList(Block(d, config.heads, cross) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 depth); the
        conditioning projections added for post-training (cross-attention out, frame_cond)
        start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for block in self.blocks:
            assert isinstance(block, Block)
            for residual in (block.attn.proj, block.mlp[2]):
                assert isinstance(residual, nn.Linear)
                nn.init.normal_(residual.weight, std=0.02 / math.sqrt(2 * self.config.depth))
            if block.cross is not None:
                nn.init.zeros_(block.cross.proj.weight)
        if self.frame_embed is not None:
            nn.init.zeros_(self.frame_embed.weight)

    @property
    def bos(self) -> int:
        """The input id that starts every sequence (one past the vocabulary)."""
        return self.config.vocab_size

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.head.weight.device

    def shift_right(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, P) -> inputs (B, P): BOS followed by tokens[:, :-1]."""
        bos = torch.full_like(tokens[:, :1], self.bos)
        return torch.cat([bos, tokens[:, :-1]], dim=1)

    def text_memory(
        self, batch: int, text: torch.Tensor | None = None, text_keep: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The caption's memory tokens (B, text_tokens, D), the null embedding's where ``text``
        is None or ``text_keep`` (B,) bool is False; None for an unconditioned model (which
        refuses text)."""
        if self.text_embed is None or self.null_text is None or self.text_norm is None:
            if text is not None:
                raise ValueError(
                    "this model takes no text (text_tokens=0); add cross-attention with "
                    "with_text_conditioning(model, text_tokens)"
                )
            return None
        if text is None:
            text = self.null_text.expand(batch, -1)
        else:
            if tuple(text.shape) != (batch, self.config.text_dim):
                raise ValueError(
                    f"text must be ({batch}, {self.config.text_dim}), got {tuple(text.shape)}"
                )
            if text_keep is not None:
                text = torch.where(text_keep[:, None], text, self.null_text)
        memory = self.text_embed(text).view(batch, self.config.text_tokens, -1)
        return self.text_norm(memory)

    def new_cache(self, batch: int) -> KVCache:
        """An empty cache for decoding ``batch`` sequences, on the model's device and dtype."""
        cfg = self.config
        shape = (cfg.depth, batch, cfg.heads, cfg.sequence_length, cfg.width // cfg.heads)
        weight = self.head.weight
        return KVCache(
            torch.zeros(shape, dtype=weight.dtype, device=weight.device),
            torch.zeros(shape, dtype=weight.dtype, device=weight.device),
        )

    def _check_frame_cond(self, batch: int, frame_cond: torch.Tensor | None) -> None:
        cfg = self.config
        if frame_cond is None:
            return
        if self.frame_embed is None:
            raise ValueError(
                "this model takes no frame_cond (frame_cond_dim=0); add it with "
                "with_frame_conditioning(model, dim)"
            )
        if tuple(frame_cond.shape) != (batch, cfg.frames, cfg.frame_cond_dim):
            raise ValueError(
                f"frame_cond must be ({batch}, {cfg.frames}, {cfg.frame_cond_dim}), got "
                f"{tuple(frame_cond.shape)}"
            )

    def extend(
        self,
        inputs: torch.Tensor,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        frame_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, n, vocab) of the n positions after the cache's content.

        inputs: (B, n) input ids (token ids, BOS first) at those positions, i.e. the tokens
        one position earlier; cache: advanced by n (None: the positions start at 0 and nothing
        is kept); memory: ``text_memory`` output (the null caption's if None, for a
        text-conditioned model); frame_cond: (B, T, frame_cond_dim) for the whole clip.
        """
        cfg = self.config
        b, n = inputs.shape
        start = 0 if cache is None else cache.length
        if n < 1 or start + n > cfg.sequence_length:
            raise ValueError(
                f"positions {start}..{start + n - 1} are outside a clip of "
                f"{cfg.sequence_length} tokens"
            )
        self._check_frame_cond(b, frame_cond)
        if memory is None:
            memory = self.text_memory(b)
        positions = (self.pos_time[:, None] + self.pos_space[None]).flatten(0, 1)
        h = self.token_embed(inputs) + positions[start : start + n]
        if frame_cond is not None and self.frame_embed is not None:
            per_frame = self.frame_embed(frame_cond.to(h.dtype))
            per_token = per_frame.repeat_interleave(cfg.tokens_per_frame, dim=1)
            h = h + per_token[:, start : start + n]
        for i, block in enumerate(self.blocks):
            keys = values = None
            if cache is not None:
                keys, values = cache.keys[i], cache.values[i]
            h = block(h, start, keys, values, memory)
        if cache is not None:
            cache.length += n
        return self.head(self.final_norm(h))

    def forward(
        self,
        tokens: torch.Tensor,
        text: torch.Tensor | None = None,
        text_keep: torch.Tensor | None = None,
        frame_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, P, vocab): logits[:, i] scores token i given tokens[:, :i] (teacher
        forcing, no cache).

        tokens: (B, P) int64 ids in [0, vocab), P <= sequence_length, the first P tokens of
        clips (frames flattened in raster order); text: (B, text_dim) or None; text_keep: (B,)
        bool, False rows use the null caption; frame_cond: (B, T, frame_cond_dim).
        """
        cfg = self.config
        if tokens.dim() != 2 or not 1 <= tokens.shape[1] <= cfg.sequence_length:
            raise ValueError(
                f"tokens must be (B, P) with 1 <= P <= {cfg.sequence_length}, got "
                f"{tuple(tokens.shape)}"
            )
        if (
            tokens.dtype != torch.int64
            or int(tokens.min()) < 0
            or int(tokens.max()) >= cfg.vocab_size
        ):
            raise ValueError(
                f"tokens must be int64 ids in [0, {cfg.vocab_size}), got {tokens.dtype} in "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        memory = self.text_memory(len(tokens), text, text_keep)
        return self.extend(self.shift_right(tokens), None, memory, frame_cond)

    def save(
        self,
        folder: str | Path,
        tokenizer: VideoTokenizerConfig | None = None,
        info: dict[str, Any] | None = None,
    ) -> Path:
        """Write weights and config into ``folder`` atomically; the tokenizer config whose
        tokens the model reads and free-form ``info`` go in config.json."""
        return write_checkpoint(
            folder, self, FORMAT, "autoregressive", self.config.to_dict(), tokenizer, info
        )


def read_autoregressive_checkpoint(
    folder: str | Path,
) -> tuple[AutoregressiveConfig, VideoTokenizerConfig | None, dict[str, Any]]:
    """(model config, tokenizer config or None, info) stored in a checkpoint folder."""
    config, tokenizer, info = read_checkpoint(folder, FORMAT, "autoregressive", "an autoregressive")
    return AutoregressiveConfig.from_dict(config), tokenizer, info


def load_autoregressive(
    folder: str | Path,
    expected: AutoregressiveConfig | None = None,
    device: str | torch.device = "cpu",
) -> AutoregressiveWorldModel:
    """Load a checkpoint folder (eval mode, on ``device``); refuse one saved with a config
    other than ``expected``, or whose weights do not fit its config, with
    ``CheckpointMismatchError``."""
    config, _, _ = read_autoregressive_checkpoint(folder)
    refuse_other_config(folder, config, expected)
    model = load_weights(folder, AutoregressiveWorldModel(config), device)
    assert isinstance(model, AutoregressiveWorldModel)
    return model


def _expanded(
    model: AutoregressiveWorldModel, config: AutoregressiveConfig
) -> AutoregressiveWorldModel:
    """A model of ``config`` (``model``'s plus new conditioning) holding every weight of
    ``model``; the new layers keep their (output-preserving) initialisation."""
    expanded = AutoregressiveWorldModel(config).to(model.device)
    old = model.state_dict()
    missing, unexpected = expanded.load_state_dict(old, strict=False)
    new = set(expanded.state_dict()) - set(old)
    if unexpected or set(missing) != new:
        raise RuntimeError(
            f"weights did not carry over: missing {missing}, unexpected {unexpected}"
        )
    return expanded.train(model.training)


def with_text_conditioning(
    model: AutoregressiveWorldModel, text_tokens: int
) -> AutoregressiveWorldModel:
    """A copy of an unconditioned ``model`` with cross-attention to ``text_tokens`` caption
    tokens in every block (Video2World). Every pre-trained weight is copied and the new
    attention outputs start at zero, so the copy's logits equal the original's for any text."""
    if text_tokens < 1:
        raise ValueError(f"text_tokens must be >= 1, got {text_tokens}")
    if model.config.text_tokens:
        raise ValueError(f"the model already cross-attends to {model.config.text_tokens} tokens")
    return _expanded(model, dataclasses.replace(model.config, text_tokens=text_tokens))


def with_frame_conditioning(model: AutoregressiveWorldModel, dim: int) -> AutoregressiveWorldModel:
    """A copy of ``model`` that also takes a per-frame vector of ``dim`` floats (actions);
    the new projection starts at zero, so its logits equal the original's until trained."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if model.config.frame_cond_dim:
        raise ValueError(f"the model already takes frame_cond of {model.config.frame_cond_dim}")
    return _expanded(model, dataclasses.replace(model.config, frame_cond_dim=dim))


def draw_tokens(
    logits: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """One id (B,) int64 per row of logits (B, V), drawn on the CPU after temperature and
    top-k (argmax at temperature 0): from ``generator``, or, given ``uniforms`` (B,) in
    [0, 1), by inverse transform of them (the caller then owns the randomness, as a
    world-model env does with its per-episode generator)."""
    logits = logits.detach().float().cpu()
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / sampling.temperature
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = logits.topk(sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if uniforms is not None:
        cumulative = probs.double().cumsum(dim=-1)
        targets = uniforms.detach().double().cpu()[:, None] * cumulative[:, -1:]
        drawn = torch.searchsorted(cumulative, targets, right=True).squeeze(1)
        # a uniform rounded up to 1 must still land on an id that can be drawn
        last_possible = logits.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
        return torch.minimum(drawn, last_possible)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample(
    model: AutoregressiveWorldModel,
    batch: int,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    context: torch.Tensor | None = None,
    text: torch.Tensor | None = None,
    frame_cond: torch.Tensor | None = None,
    use_cache: bool = True,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate ``batch`` token clips (B, T, s, s) int64 on the CPU.

    context: (B, K, s, s) tokens of the first K < T frames, kept as given (Video2World; None
    or K = 0: generate from nothing); text: (B, text_dim) caption embeddings (None: the null
    caption); frame_cond: (B, T, frame_cond_dim). Every draw comes from ``generator`` in the
    same order, so a seed gives the same clips, with or without the cache (which only saves
    recomputing the prefix: ``use_cache=False`` runs the whole prefix for every token).
    ``uniforms`` (B, generated tokens) in [0, 1) draw the tokens instead of ``generator``
    (``draw_tokens``).
    """
    cfg = model.config
    s, length, device = cfg.latent_size, cfg.sequence_length, model.device
    tokens = torch.zeros(batch, length, dtype=torch.long)
    given = 0
    if context is not None and context.shape[1] > 0:
        k = context.shape[1]
        if k >= cfg.frames or tuple(context.shape) != (batch, k, s, s):
            raise ValueError(
                f"context must be ({batch}, K < {cfg.frames}, {s}, {s}) tokens, got "
                f"{tuple(context.shape)}"
            )
        given = k * cfg.tokens_per_frame
        tokens[:, :given] = context.reshape(batch, -1).long().cpu()
    if uniforms is not None and tuple(uniforms.shape) != (batch, length - given):
        raise ValueError(
            f"uniforms must be ({batch}, {length - given}), one per generated token, got "
            f"{tuple(uniforms.shape)}"
        )
    guided = text is not None and sampling.guidance != 1.0
    rows = 2 * batch if guided else batch

    def twice(value: torch.Tensor) -> torch.Tensor:
        return torch.cat([value, value]) if guided else value

    keep = None
    if text is not None:
        text = twice(text.to(device).float())
        if guided:
            keep = torch.arange(rows, device=device) < batch  # second half: the null caption
    memory = model.text_memory(rows, text, keep)
    if frame_cond is not None:
        frame_cond = twice(frame_cond.to(device).float())
    cache = model.new_cache(rows) if use_cache else None
    inputs = model.shift_right(tokens)
    for position in range(given, length):
        if cache is None:
            step = inputs[:, : position + 1]
        elif position == given:
            step = inputs[:, : given + 1]  # the prefill: BOS and the whole context
        else:
            step = tokens[:, position - 1 : position]
        logits = model.extend(twice(step.to(device)), cache, memory, frame_cond)[:, -1]
        if guided:
            conditional, unconditional = logits.chunk(2)
            logits = unconditional + sampling.guidance * (conditional - unconditional)
        drawn_by = None if uniforms is None else uniforms[:, position - given]
        tokens[:, position] = draw_tokens(logits, sampling, generator, drawn_by)
        if position + 1 < length:
            inputs[:, position + 1] = tokens[:, position]
    return tokens.view(batch, cfg.frames, s, s)


__all__ = [
    "AutoregressiveConfig",
    "AutoregressiveWorldModel",
    "Block",
    "CausalSelfAttention",
    "CrossAttention",
    "KVCache",
    "SamplingConfig",
    "draw_tokens",
    "load_autoregressive",
    "read_autoregressive_checkpoint",
    "sample",
    "with_frame_conditioning",
    "with_text_conditioning",
]
