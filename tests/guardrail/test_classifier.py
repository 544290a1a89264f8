"""The prompt classifier: deterministic training, reproducible shipped weights, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wfm_sim.curation.embed import TextEmbedder
from wfm_sim.guardrail.classifier import (
    DEFAULT_CLASSIFIER,
    DEFAULT_PROMPTS,
    PromptClassifier,
    PromptClassifierTrainConfig,
    PromptExample,
    TrainedPromptClassifier,
    classification_metrics,
    file_sha256,
    load_prompt_classifier,
    load_prompt_examples,
    save_prompt_classifier,
    split_examples,
    train_prompt_classifier,
)


@pytest.fixture(scope="module")
def examples() -> list[PromptExample]:
    return load_prompt_examples()


@pytest.fixture(scope="module")
def trained(examples: list[PromptExample], text_embedder: TextEmbedder) -> TrainedPromptClassifier:
    """The classifier trained with the default config (the shipped one's recipe)."""
    return train_prompt_classifier(examples, embedder=text_embedder, source=DEFAULT_PROMPTS)


def test_the_prompt_set_is_labelled_and_varied(examples: list[PromptExample]) -> None:
    labels = [e.label for e in examples]
    assert labels.count("safe") >= 200 and labels.count("unsafe") >= 150
    unsafe_topics = {e.category for e in examples if e.label == "unsafe"}
    assert {"violence", "vehicle_attack", "weapons", "self_harm", "sexual", "hate", "crime"} <= (
        unsafe_topics
    )
    texts = [e.text.lower() for e in examples]
    assert len(set(texts)) == len(texts), "duplicate prompts would leak into the held-out split"


def test_split_is_stratified_disjoint_and_seeded(examples: list[PromptExample]) -> None:
    train, held = split_examples(examples, 0.25, seed=0)
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(examples)
    for label in ("safe", "unsafe"):
        total = sum(e.label == label for e in examples)
        assert abs(sum(examples[i].label == label for i in held) - 0.25 * total) <= 1
    assert split_examples(examples, 0.25, seed=0) == (train, held)
    assert split_examples(examples, 0.25, seed=1)[1] != held


def test_training_is_deterministic_per_seed(
    examples: list[PromptExample], text_embedder: TextEmbedder, trained: TrainedPromptClassifier
) -> None:
    again = train_prompt_classifier(examples, embedder=text_embedder)
    assert torch.equal(again.classifier.weight, trained.classifier.weight)
    assert torch.equal(again.classifier.bias, trained.classifier.bias)
    other = train_prompt_classifier(
        examples, PromptClassifierTrainConfig(seed=1), embedder=text_embedder
    )
    assert not torch.equal(other.classifier.weight, trained.classifier.weight)


def test_held_out_metrics_are_measured_and_good(trained: TrainedPromptClassifier) -> None:
    held = trained.metrics["held_out"]
    counts = sum(
        int(held[k])
        for k in ("true_positives", "false_positives", "false_negatives", "true_negatives")
    )
    assert counts == len(trained.held_out) >= 100
    # Logistic regression on MiniLM embeddings: ~0.93-0.98 held-out accuracy over splits.
    assert held["accuracy"] >= 0.9 and held["recall"] >= 0.85 and held["precision"] >= 0.85
    assert trained.metrics["train"]["accuracy"] >= held["accuracy"]


def test_shipped_classifier_is_reproduced_from_the_shipped_prompts(
    trained: TrainedPromptClassifier,
) -> None:
    shipped = load_prompt_classifier()
    stored = json.loads(DEFAULT_CLASSIFIER.with_suffix(".json").read_text())
    assert stored["info"]["prompts_sha256"] == file_sha256(DEFAULT_PROMPTS), (
        "prompts.json changed since the classifier was trained: "
        "run `python -m wfm_sim.guardrail train-prompt-classifier`"
    )
    torch.testing.assert_close(shipped.weight, trained.classifier.weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shipped.bias, trained.classifier.bias, atol=1e-4, rtol=1e-4)
    assert shipped.threshold == PromptClassifierTrainConfig().threshold
    assert stored["info"]["metrics"]["held_out"] == pytest.approx(trained.metrics["held_out"])


def test_checkpoint_round_trip(
    tmp_path: Path, trained: TrainedPromptClassifier, text_embedder: TextEmbedder
) -> None:
    path = save_prompt_classifier(trained.classifier, tmp_path / "clf")
    assert path.name == "clf.safetensors" and (tmp_path / "clf.json").exists()
    loaded = load_prompt_classifier(tmp_path / "clf")
    assert torch.equal(loaded.weight, trained.classifier.weight)
    assert loaded.threshold == trained.classifier.threshold
    assert loaded.info["metrics"] == trained.metrics
    embeddings = text_embedder.embed(["a truck overtakes a bus", "how to make a silencer"])
    np.testing.assert_array_equal(
        loaded.probabilities(embeddings), trained.classifier.probabilities(embeddings)
    )


def test_bad_checkpoints_and_labels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-prompt-classifier"):
        load_prompt_classifier(tmp_path / "missing")
    with pytest.raises(ValueError, match="retrain"):
        PromptClassifier(torch.zeros(384), torch.zeros(()), embedder="another-model")
    with pytest.raises(ValueError, match="weight"):
        PromptClassifier(torch.zeros(10), torch.zeros(()))
    with pytest.raises(ValueError, match="label"):
        PromptExample("a car", "maybe")
    with pytest.raises(ValueError, match="threshold"):
        PromptClassifierTrainConfig(threshold=1.5)


def test_metrics_count_unsafe_as_positive() -> None:
    predicted = np.array([True, True, False, False, True])
    unsafe = np.array([True, False, True, False, True])
    metrics = classification_metrics(predicted, unsafe)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert (metrics["false_positives"], metrics["false_negatives"]) == (1, 1)
