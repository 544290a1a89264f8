"""What a guard answers (``GuardDecision``) and how refusals are recorded (``log_refusal``).

Every guard returns a ``GuardDecision``; a refused request carries a clear ``refusal_message``
for the user, a warning goes to Python's ``logging`` and, when a log file is configured, one
JSON line is appended to it (the audit trail of what was refused and why).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger("wfm_sim.guardrail")


@dataclass(frozen=True)
class GuardDecision:
    """A guard's verdict on one request.

    ``stage`` names the check that decided: for prompts ``"blocklist"`` or ``"classifier"``
    (an allowed prompt is decided by the classifier, the last stage), for videos ``"format"``,
    ``"finite"``, ``"corrupt"``, ``"blank"``, ``"tokenizer"`` or ``"temporal"`` (an allowed
    video by ``"temporal"``, the last stage). ``score`` is that stage's number: the
    classifier's probability that a prompt is unsafe, or for videos the worst calibrated score
    over its threshold (above 1 is refused); NaN when the stage has none (a blocklist hit, a
    malformed array). ``scores`` holds every raw score measured. ``reason`` says in words what
    was found.
    """

    allowed: bool
    reason: str
    stage: str
    score: float = math.nan
    scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def refusal_message(self) -> str:
        """The message a refused user sees (empty when allowed)."""
        if self.allowed:
            return ""
        return f"Request refused by the guardrail ({self.stage} check): {self.reason}."


def log_refusal(
    decision: GuardDecision, guard: str, log_path: str | Path | None, **context: Any
) -> None:
    """Record a refused ``decision`` of ``guard`` (``"prompt"`` or ``"video"``).

    Emits a ``logging`` warning and, when ``log_path`` is set, appends one JSON line (time,
    guard, stage, reason, score, scores, and ``context`` such as the prompt) to it. The line
    is written with a single ``write`` on a file opened in append mode, so lines from several
    processes never interleave.
    """
    logger.warning("%s guard refused a request: %s", guard, decision.refusal_message)
    if log_path is None:
        return
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "guard": guard,
        "stage": decision.stage,
        "reason": decision.reason,
        "score": None if math.isnan(decision.score) else decision.score,
        "scores": dict(decision.scores),
        **context,
    }
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_refusal_log(log_path: str | Path) -> list[dict[str, Any]]:
    """The records of a refusal log written by ``log_refusal``, oldest first."""
    path = Path(log_path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
