"""Write the policy-ranking report: does the world model rank policies like the real simulator?

``write_ranking_report`` turns per-policy episode returns (real simulator and world model),
the ranking metrics from ``wfm_sim.evaluation`` and a few paired rollouts into one folder:

=====================  ==========================================================================
file                   content
=====================  ==========================================================================
``report.md``          policy table, metric table, scatter plot, rollout GIFs, how to read them
``report.html``        the same content as one page; images by relative path
``scatter.png``        mean real vs mean world-model return per policy, CI bars, y = x line
``rollout_<p>.gif``    real (left) and imagined (right) frames side by side, 4x nearest upscale
``metrics.json``       ranking metrics, per-policy means with CIs and ranks, and ``extra``
=====================  ==========================================================================

Every file is written atomically, so a killed run never leaves a half-written report.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from wfm_sim.evaluation.ranking import MetricWithCI, RankingMetrics, mean_with_ci
from wfm_sim.io import atomic_path, write_json_atomic

GIF_SCALE = 4  # nearest-neighbour upscale so 64x64 frames are visible
GIF_GAP_PX = 8  # white columns between the real and the imagined frame (after upscaling)
GIF_FRAME_MS = 100
MEAN_CONFIDENCE = 0.95  # level of the per-policy mean-return intervals
ROLLOUT_CAPTION = "left: real simulator, right: world model, same start, same actions"

_METRIC_ROWS = (  # (field of RankingMetrics, label, what perfect means)
    ("spearman", "Spearman ρ", "1 (same order)"),
    ("kendall", "Kendall τ", "1 (every pair in the same order)"),
    ("pearson", "Pearson r", "1 (returns on one line)"),
    ("mmrv", "MMRV", "0 (no pair of policies swapped)"),
    ("regret_at_1", "regret@1", "0 (the model's favourite is the real best)"),
)

_HOW_TO_READ = (
    "Each policy is scored by its mean episode return in the real simulator and in the world "
    "model; intervals are percentile bootstraps over episodes. A world model can stand in for "
    "the simulator when it orders the policies the same way, even if its returns are biased: in "
    "the scatter plot that means points rising from left to right, not points on the dashed "
    "y = x line. Spearman ρ and Kendall τ measure rank agreement and Pearson r linear agreement "
    "(1 is perfect). MMRV takes, for each policy, the largest real-return gap to a policy the "
    "world model orders the other way, as a fraction of the real returns' range, and averages "
    "it over policies (0 is perfect). regret@1 is the fraction of that range lost by deploying "
    "the world model's favourite policy instead of the real best (0 is perfect). Wide "
    "intervals mean more episodes are needed before trusting the ranking. An imagined episode "
    "is one draw of the world model's randomness: rerun with other seeds, or average several "
    "imagined episodes per start (`wfm_samples`), before reading much into a small difference "
    "(`python -m experiments.bench.ranking_noise` measures the spread)."
)


@dataclass
class PolicyResult:
    """One policy's per-episode returns in the real simulator and in the world model."""

    name: str
    real_returns: list[float]
    wfm_returns: list[float]


@dataclass
class RolloutPair:
    """A real and an imagined rollout from the same start under the same actions.

    ``real_frames`` and ``wfm_frames``: (T, H, W, 3) uint8, the same shape.
    """

    policy: str
    real_frames: np.ndarray
    wfm_frames: np.ndarray


def write_ranking_report(
    out_dir: Path,
    results: Sequence[PolicyResult],
    metrics: RankingMetrics,
    rollouts: Sequence[RolloutPair],
    rng: np.random.Generator,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the ranking report into ``out_dir`` (created if missing) and return ``report.md``.

    ``rng`` draws the bootstrap intervals of the per-policy means; ``extra`` (JSON-serialisable,
    e.g. seeds and checkpoint names) is stored as is in ``metrics.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _policy_rows(results, rng)
    gif_names = _gif_names(rollouts)

    _write_scatter(out_dir / "scatter.png", rows, metrics)
    for pair, gif_name in zip(rollouts, gif_names, strict=True):
        _write_rollout_gif(out_dir / gif_name, pair)
    write_json_atomic(out_dir / "metrics.json", _metrics_payload(rows, metrics, extra))

    blocks = _report_blocks(rows, metrics, rollouts, gif_names, extra or {})
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(_to_html(blocks), encoding="utf-8")
    report = out_dir / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text(_to_markdown(blocks), encoding="utf-8")
    return report


# --- Per-policy summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class _PolicyRow:
    name: str
    real: MetricWithCI
    wfm: MetricWithCI
    rank_real: int
    rank_wfm: int
    n_real: int
    n_wfm: int


def _policy_rows(results: Sequence[PolicyResult], rng: np.random.Generator) -> list[_PolicyRow]:
    """Means with CIs and ranks (1 = highest return) per policy, best real return first."""
    _check_results(results)
    real = [mean_with_ci(r.real_returns, rng, confidence=MEAN_CONFIDENCE) for r in results]
    wfm = [mean_with_ci(r.wfm_returns, rng, confidence=MEAN_CONFIDENCE) for r in results]
    rank_real = stats.rankdata([-m.value for m in real], method="min").astype(int)
    rank_wfm = stats.rankdata([-m.value for m in wfm], method="min").astype(int)
    rows = [
        _PolicyRow(
            name=result.name,
            real=real[i],
            wfm=wfm[i],
            rank_real=int(rank_real[i]),
            rank_wfm=int(rank_wfm[i]),
            n_real=len(result.real_returns),
            n_wfm=len(result.wfm_returns),
        )
        for i, result in enumerate(results)
    ]
    return sorted(rows, key=lambda row: (row.rank_real, row.name))


def _check_results(results: Sequence[PolicyResult]) -> None:
    if not results:
        raise ValueError("results is empty; pass one PolicyResult per evaluated policy")
    names = [r.name for r in results]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"policy names must be unique, repeated: {duplicates}")
    for result in results:
        for label, values in (("real", result.real_returns), ("world-model", result.wfm_returns)):
            if len(values) == 0:
                raise ValueError(f"policy {result.name!r} has no {label} episodes")
            if not np.isfinite(np.asarray(values, dtype=float)).all():
                raise ValueError(f"policy {result.name!r} has non-finite {label} returns")


# --- Figures ----------------------------------------------------------------------------------


def _write_scatter(path: Path, rows: Sequence[_PolicyRow], metrics: RankingMetrics) -> None:
    """Mean real (x) vs mean world-model (y) return per policy, with CI bars and y = x."""
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.array([row.real.value for row in rows])
    y = np.array([row.wfm.value for row in rows])
    ax.errorbar(
        x,
        y,
        xerr=_error_bars([row.real for row in rows]),
        yerr=_error_bars([row.wfm for row in rows]),
        fmt="o",
        capsize=3,
        label="policy (bootstrap CI)",
    )
    for row in rows:
        ax.annotate(
            row.name,
            (row.real.value, row.wfm.value),
            xytext=(5, 5),
            textcoords="offset points",
        )

    ends = [row.real.low for row in rows] + [row.wfm.low for row in rows]
    ends += [row.real.high for row in rows] + [row.wfm.high for row in rows]
    lo, hi = min(ends), max(ends)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="y = x")
    ax.set_xlabel("mean return, real simulator")
    ax.set_ylabel("mean return, world model")
    ax.set_title(
        f"Spearman ρ = {_fmt(metrics.spearman.value)}, MMRV = {_fmt(metrics.mmrv.value, 3)}"
    )
    ax.legend(loc="upper left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _error_bars(means: Sequence[MetricWithCI]) -> np.ndarray:
    """Distances from each mean down to its CI low and up to its high, shape ``(2, n)``."""
    bars = np.array([[m.value - m.low for m in means], [m.high - m.value for m in means]])
    return np.clip(bars, 0.0, None)


def _gif_names(rollouts: Sequence[RolloutPair]) -> list[str]:
    """``rollout_<policy>.gif`` with the name made file-safe; rejects names that collide."""
    names = [f"rollout_{re.sub(r'[^A-Za-z0-9_.-]', '_', pair.policy)}.gif" for pair in rollouts]
    if len(set(names)) != len(names):
        policies = [pair.policy for pair in rollouts]
        raise ValueError(
            f"rollout policy names {policies} map to the same GIF file names {names}; "
            "pass one rollout per policy with distinct names"
        )
    return names


def _write_rollout_gif(path: Path, pair: RolloutPair) -> None:
    """Real and imagined frames side by side: (T, S*H, 2*S*W + gap, 3), S = ``GIF_SCALE``."""
    real, wfm = pair.real_frames, pair.wfm_frames
    for label, frames in (("real_frames", real), ("wfm_frames", wfm)):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"rollout {pair.policy!r}: {label} must be (T, H, W, 3) uint8, "
                f"got {frames.shape} {frames.dtype}"
            )
    if real.shape != wfm.shape or real.shape[0] == 0:
        raise ValueError(
            f"rollout {pair.policy!r}: real and world-model frames must have the same non-empty "
            f"shape (same start, same actions), got {real.shape} and {wfm.shape}"
        )
    real_big, wfm_big = (f.repeat(GIF_SCALE, axis=1).repeat(GIF_SCALE, axis=2) for f in (real, wfm))
    gap = np.full((*real_big.shape[:2], GIF_GAP_PX, 3), 255, dtype=np.uint8)
    frames = np.concatenate([real_big, gap, wfm_big], axis=2)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=GIF_FRAME_MS, loop=0)


# --- metrics.json -----------------------------------------------------------------------------


def _metrics_payload(
    rows: Sequence[_PolicyRow], metrics: RankingMetrics, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    payload = {
        "metrics": metrics.to_dict(),
        "policies": {
            row.name: {
                "real": asdict(row.real),
                "wfm": asdict(row.wfm),
                "rank_real": row.rank_real,
                "rank_wfm": row.rank_wfm,
                "n_real_episodes": row.n_real,
                "n_wfm_episodes": row.n_wfm,
            }
            for row in rows
        },
        "mean_confidence": MEAN_CONFIDENCE,
        "extra": dict(extra or {}),
    }
    payload = _json_safe(payload)
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"extra must hold only JSON values (str, numbers, lists, dicts): {err}"
        ) from err
    return payload


def _json_safe(value: Any) -> Any:
    """NaN and infinities as ``null`` (strict JSON), numpy scalars and arrays as Python values."""
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- Markdown and HTML from one list of blocks ------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class _Image:
    src: str
    alt: str
    caption: str


_Block = _Heading | _Paragraph | _Table | _Image


def _report_blocks(
    rows: Sequence[_PolicyRow],
    metrics: RankingMetrics,
    rollouts: Sequence[RolloutPair],
    gif_names: Sequence[str],
    extra: Mapping[str, Any],
) -> list[_Block]:
    level = f"{MEAN_CONFIDENCE:.0%} CI"
    policy_table = _Table(
        header=[
            "policy",
            f"mean real return [{level}]",
            f"mean world-model return [{level}]",
            "rank real",
            "rank world model",
            "episodes (real / world model)",
        ],
        rows=[
            [
                row.name,
                _fmt_ci(row.real),
                _fmt_ci(row.wfm),
                str(row.rank_real),
                str(row.rank_wfm),
                f"{row.n_real} / {row.n_wfm}",
            ]
            for row in rows
        ],
    )
    metric_table = _Table(
        header=["metric", "value", "bootstrap CI", "perfect"],
        rows=[
            [
                label,
                _fmt(getattr(metrics, field).value, 3),
                _fmt_interval(getattr(metrics, field), 3),
                perfect,
            ]
            for field, label, perfect in _METRIC_ROWS
        ],
    )
    blocks: list[_Block] = [
        _Heading("Policy ranking: real simulator vs world model", level=1),
        _Heading("Policies, best real return first"),
        policy_table,
        _Heading("Ranking agreement"),
        metric_table,
        _Image(
            "scatter.png", "mean real vs world-model return per policy", "each point is a policy"
        ),
    ]
    if rollouts:
        blocks.append(_Heading("Rollouts"))
        blocks += [
            _Image(name, f"rollout of {pair.policy}", f"{pair.policy}: {ROLLOUT_CAPTION}")
            for pair, name in zip(rollouts, gif_names, strict=True)
        ]
    if extra:
        settings = [[key, _setting(value)] for key, value in extra.items()]
        blocks += [_Heading("Run settings"), _Table(header=["setting", "value"], rows=settings)]
    blocks += [_Heading("How to read this report"), _Paragraph(_HOW_TO_READ)]
    return blocks


def _setting(value: Any) -> str:
    """A run setting as one table cell: JSON, lists of more than 8 items shortened."""
    if isinstance(value, list) and len(value) > 8:
        return f"{json.dumps(value[:3])[:-1]}, … ({len(value)} values)]"
    return json.dumps(_json_safe(value), ensure_ascii=False)


def _to_markdown(blocks: Sequence[_Block]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", r"\|")

    parts: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, _Paragraph):
            parts.append(block.text)
        elif isinstance(block, _Table):
            lines = [
                "| " + " | ".join(cell(h) for h in block.header) + " |",
                "|" + "---|" * len(block.header),
            ]
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        else:
            parts.append(f"![{block.alt}]({block.src})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def _to_html(blocks: Sequence[_Block]) -> str:
    esc = html.escape
    body: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, _Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, _Table):
            header = "".join(f"<th>{esc(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            body.append(
                f'<figure><img src="{esc(block.src)}" alt="{esc(block.alt)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "img{image-rendering:pixelated;max-width:100%}figcaption{font-style:italic}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>Policy ranking report</title><style>{style}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _fmt_interval(metric: MetricWithCI, digits: int = 2) -> str:
    return f"[{_fmt(metric.low, digits)}, {_fmt(metric.high, digits)}]"


def _fmt_ci(metric: MetricWithCI) -> str:
    return f"{_fmt(metric.value)} {_fmt_interval(metric)}"
