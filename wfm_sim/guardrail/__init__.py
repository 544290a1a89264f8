"""Guardrails: a pre-guard on text prompts and a post-guard on generated video (Cosmos-style).

    from wfm_sim.guardrail import PromptGuard, VideoGuard

    prompt_decision = PromptGuard().check("a red car overtakes on a rainy highway")
    video_decision = VideoGuard().check(frames)      # (T, 64, 64, 3) uint8
    if not video_decision.allowed:
        print(video_decision.refusal_message)

Modules: ``blocklist`` (phrase matching with de-obfuscation), ``classifier`` (logistic
regression over MiniLM embeddings, trained on the shipped ``prompts.json``), ``prompt_guard``,
``video_guard`` (format, corrupt, blank, tokenizer-reconstruction and temporal checks),
``video_calibration`` (thresholds from real footage, pass/refusal rates), ``corruptions``
(broken clips for measuring), ``decision`` (the verdict and the refusal log). The shipped
classifier and driving thresholds are rebuilt by ``python -m wfm_sim.guardrail``.
"""

from wfm_sim.guardrail.blocklist import Blocklist, normalise_words
from wfm_sim.guardrail.classifier import (
    PromptClassifier,
    PromptClassifierTrainConfig,
    PromptExample,
    TrainedPromptClassifier,
    load_prompt_classifier,
    load_prompt_examples,
    save_prompt_classifier,
    train_prompt_classifier,
)
from wfm_sim.guardrail.decision import GuardDecision, log_refusal, read_refusal_log
from wfm_sim.guardrail.prompt_guard import PromptGuard, PromptGuardConfig
from wfm_sim.guardrail.video_calibration import (
    VideoCalibrationConfig,
    calibrate_video_guard,
    evaluate_video_guard,
    footage_clips,
)
from wfm_sim.guardrail.video_guard import (
    VideoGuard,
    VideoGuardConfig,
    VideoGuardThresholds,
    reconstruction_errors,
    temporal_residuals,
)

__all__ = [
    "Blocklist",
    "GuardDecision",
    "PromptClassifier",
    "PromptClassifierTrainConfig",
    "PromptExample",
    "PromptGuard",
    "PromptGuardConfig",
    "TrainedPromptClassifier",
    "VideoCalibrationConfig",
    "VideoGuard",
    "VideoGuardConfig",
    "VideoGuardThresholds",
    "calibrate_video_guard",
    "evaluate_video_guard",
    "footage_clips",
    "load_prompt_classifier",
    "load_prompt_examples",
    "log_refusal",
    "normalise_words",
    "read_refusal_log",
    "reconstruction_errors",
    "save_prompt_classifier",
    "temporal_residuals",
    "train_prompt_classifier",
]
