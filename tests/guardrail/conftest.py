"""Shared guardrail fixtures: the MiniLM sentence model and the zoo's driving world model,
each loaded once for the guardrail tests."""

from __future__ import annotations

import pytest

import world_models
from wfm_sim.curation.embed import TextEmbedder
from world_models import WorldModel


@pytest.fixture(scope="session")
def text_embedder() -> TextEmbedder:
    """MiniLM on the CPU, warmed up (loading it takes a few seconds)."""
    embedder = TextEmbedder(device="cpu")
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def driving_model() -> WorldModel:
    """The committed driving world model (its tokenizer scores frames in the video guard)."""
    return world_models.load("driving")
