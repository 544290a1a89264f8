"""The pre-guard on text prompts: a phrase blocklist, then a classifier over sentence embeddings.

Cosmos screens every prompt before generation with a keyword blocker and an LLM-based safety
classifier; here the second stage is a logistic regression over MiniLM embeddings
(``classifier.py``). A prompt is refused if it contains a blocklisted phrase, or if the
classifier's ``p(unsafe)`` reaches its threshold on the whole prompt or on any one of its
sentences (so a harmless opening sentence cannot dilute an unsafe request after it).
Refusals are logged (``decision.log_refusal``).

    guard = PromptGuard(PromptGuardConfig(log_path="runs/guardrail/refusals.jsonl"))
    decision = guard.check("a red car overtakes on a rainy highway")
    if not decision.allowed:
        print(decision.refusal_message)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wfm_sim.curation.embed import TextEmbedder
from wfm_sim.guardrail.blocklist import Blocklist
from wfm_sim.guardrail.classifier import PromptClassifier, load_prompt_classifier
from wfm_sim.guardrail.decision import GuardDecision, log_refusal


@dataclass
class PromptGuardConfig:
    """Where the prompt guard's parts come from and where refusals go.

    ``classifier_path`` / ``blocklist_path``: a classifier stem (``.safetensors`` + ``.json``)
    and a blocklist JSON; ``None`` takes the ones shipped in ``wfm_sim/guardrail``.
    ``threshold``: ``p(unsafe)`` at or above which a prompt is refused; ``None`` takes the
    classifier's own. ``log_path``: a JSON-lines file refusals are appended to (``None``: only
    ``logging``).
    """

    classifier_path: str | None = None
    blocklist_path: str | None = None
    threshold: float | None = None
    log_path: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1) or None, got {self.threshold}")


_WINDOW_WORDS = 48
"""Sentences longer than this are also read in overlapping windows of this many words: the
sentence model sees only its first ~256 word pieces, and the guard must read all of a prompt."""


def prompt_pieces(prompt: str) -> list[str]:
    """What the classifier scores: the prompt itself, each of its sentences or clauses when it
    has several, and overlapping word windows of any sentence too long to be read whole."""
    sentences = [p.strip() for p in re.split(r"[.!?;:\n]+", prompt) if p.strip()]
    pieces = [prompt.strip(), *(sentences if len(sentences) > 1 else [])]
    for sentence in sentences:
        words = sentence.split()
        if len(words) > _WINDOW_WORDS:
            stride = _WINDOW_WORDS // 2
            for start in range(0, len(words) - stride, stride):
                pieces.append(" ".join(words[start : start + _WINDOW_WORDS]))
    return pieces


class PromptGuard:
    """Screens text prompts before generation; see the module docstring.

    ``embedder`` may be passed to share one loaded MiniLM with other components (the model
    loads in a few seconds on first use).
    """

    def __init__(
        self,
        config: PromptGuardConfig | None = None,
        embedder: TextEmbedder | None = None,
        classifier: PromptClassifier | None = None,
    ) -> None:
        self.config = config = config or PromptGuardConfig()
        self.blocklist = Blocklist.load(config.blocklist_path)
        self.classifier = classifier or load_prompt_classifier(config.classifier_path)
        self.threshold = (
            config.threshold if config.threshold is not None else self.classifier.threshold
        )
        self.embedder = embedder or TextEmbedder(device=config.device)

    def score(self, prompt: str) -> float:
        """The classifier's ``p(unsafe)``: the highest over the pieces of ``prompt_pieces``."""
        embeddings = self.embedder.embed(prompt_pieces(prompt))
        return float(self.classifier.probabilities(embeddings).max())

    def check(self, prompt: str) -> GuardDecision:
        """Decide whether ``prompt`` may be generated; refusals are logged."""
        decision = self.decide(prompt)
        if not decision.allowed:
            log_refusal(decision, "prompt", self.config.log_path, prompt=prompt)
        return decision

    def decide(self, prompt: str) -> GuardDecision:
        """The decision ``check`` makes, without logging (for measuring the guard)."""
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a str, got {type(prompt).__name__}")
        phrase = self.blocklist.find(prompt)
        if phrase is not None:
            return GuardDecision(
                False, f"the prompt contains the blocked phrase {phrase!r}", "blocklist"
            )
        if not prompt.strip():
            return GuardDecision(True, "empty prompt (unconditional generation)", "classifier", 0.0)
        probability = self.score(prompt)
        if probability >= self.threshold:
            return GuardDecision(
                False,
                f"the safety classifier rates the prompt unsafe (p = {probability:.2f} >= "
                f"{self.threshold:.2f}); wfm_sim does not generate violence, weapons, self-harm, "
                "sexual content, hate or crimes",
                "classifier",
                probability,
            )
        return GuardDecision(
            True,
            f"no blocked phrase; p(unsafe) = {probability:.2f} < {self.threshold:.2f}",
            "classifier",
            probability,
        )
