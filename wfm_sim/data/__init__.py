"""Footage and training data: read recorded footage, cut it into episodes and training windows."""

from wfm_sim.data.footage import (
    CorruptFootageError,
    Episode,
    episode_lengths,
    episode_returns,
    read_episodes,
)
from wfm_sim.data.windows import (
    PAD_ACTION,
    WindowBatch,
    WindowSampler,
    draw_favouring,
    padding_actions,
    split_episodes,
)

__all__ = [
    "PAD_ACTION",
    "CorruptFootageError",
    "Episode",
    "WindowBatch",
    "WindowSampler",
    "draw_favouring",
    "episode_lengths",
    "episode_returns",
    "padding_actions",
    "read_episodes",
    "split_episodes",
]
