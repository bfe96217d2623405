"""What the commands print: the summaries and the closing time line."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FIT_STAGES",
    "baseline_lines",
    "compare_summary",
    "fit_summary",
    "interpret_summary",
    "seconds_since_start",
    "slope_note",
    "time_line",
]

#: ``metrics['timings_s']`` keys of ``nftk fit`` and how the time line names them.
FIT_STAGES = (
    ("kernels_s", "kernels"),
    ("ridge_s", "ridge"),
    ("baselines_s", "baselines"),
    ("omega_learning_s", "Omega learning"),
    ("evaluation_s", "evaluation"),
    ("files_s", "files and figures"),
)
#: Expected log-log slope of the gaps against width.
EXPECTED_SLOPE = -0.5
#: A fitted slope further than this from -0.5 gets an explanation.
SLOPE_TOLERANCE = 0.15


def seconds_since_start() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 elsewhere).

    The command line adds them to its time line as "start-up": the Python
    interpreter and the imports of JAX and neural-tangents.
    """
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def time_line(total: float, stages: list[tuple[str, float]]) -> str:
    """``time  T s total: a x s, b y s, ..., other z s``; the parts add up to T.

    Example:
        >>> time_line(10.0, [("kernels", 4.0), ("Omega learning", 5.5)])
        'time           10.0 s total: kernels 4.0 s, Omega learning 5.5 s, other 0.5 s'
    """
    other = max(total - sum(t for _, t in stages), 0.0)
    parts = [f"{name} {t:.1f} s" for name, t in stages] + [f"other {other:.1f} s"]
    return f"time           {total:.1f} s total: " + ", ".join(parts)


def baseline_lines(b: dict[str, Any]) -> list[str]:
    """The accuracy rows of ``nftk fit``: learned Omega, validation-selected depth,
    uniform mix and the oracle, with intervals, then the paired tests."""
    q = 100 * b["confidence"]
    splits = f"; mean over {b['n_splits']} splits" if b["n_splits"] > 1 else ""
    lines = [
        f"test accuracy (with {q:.0f}% bootstrap interval over test points{splits})"
    ]
    for r in b["rows"]:
        name = r["name"] + (f" (layer {r['depth']})" if "depth" in r else "")
        lo, hi = r["test_bootstrap_interval"]
        line = f"  {name:<52} {100 * r['test_accuracy']:6.2f} % [{100 * lo:.2f}, "
        line += f"{100 * hi:.2f}]"
        if "split_mean" in r:
            slo, shi = r["split_interval"]
            line += f"  splits {100 * r['split_mean']:.2f} % [{100 * slo:.2f}, "
            line += f"{100 * shi:.2f}]"
        lines.append(line)
    for key, label in (("vs_validation_depth", "validation depth"),
                       ("vs_uniform", "uniform mix")):  # fmt: skip
        t = b["paired_tests"][key]
        lo, hi = t["bootstrap_interval"]
        lines.append(
            f"  learned - {label:<17} {100 * t['accuracy_difference']:+6.2f} points "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}], McNemar p = {t['p_value']:.3g}"
        )
    return lines


def fit_summary(
    m: dict[str, Any], run: Path, elapsed: float, t_data: float, startup: float = 0.0
) -> str:
    """The lines ``nftk fit`` prints at the end.

    ``elapsed`` counts from the start of the command, ``startup`` (the seconds
    before it) is added to the total as its own stage.
    """
    reason = f", {m['stop_reason']}" if m.get("stop_reason") else ""
    lines = [
        *baseline_lines(m["baselines"]),
        f"sparsity       {100 * m['sparsity']:.1f} % of Omega entries are exactly 0",
        f"Omega steps    {m['n_steps']} (converged: {m['converged']}{reason})",
    ]
    if "stability" in m:
        lines.append(
            "stability      mean rank correlation of layer importance between runs "
            f"{m['stability']['mean_rank_correlation']:.2f}"
        )
    t = m["timings_s"]
    stages = [("data", t_data)] + [(name, t.get(k, 0.0)) for k, name in FIT_STAGES]
    if startup > 0:
        stages.insert(0, ("start-up", startup))
        elapsed += startup
    if m.get("resumed") == "finished":
        earlier = sum(t.get(k, 0.0) for k, _ in FIT_STAGES)
        lines.append(
            f"time           {elapsed:.1f} s total: the run had finished, nothing "
            f"was recomputed (it took {earlier:.1f} s)"
        )
    else:
        lines.append(time_line(elapsed, stages))
    lines.append(f"results        {run}")
    return "\n".join(lines)


def interpret_summary(r: dict[str, Any], classes: Any, run: Path) -> str:
    """The per-class table of ``nftk interpret`` and its agreement line."""
    lines = [f"{'class':>8}  {'rank corr':>9}  {'top layer kernel/finite':>24}"]
    for c, name in enumerate(classes):
        lines.append(
            f"{name:>8}  {r['rank_correlation'][c]:9.2f}  "
            f"{r['top_layer_kernel'][c]:>12} / {r['top_layer_finite'][c]}"
        )
    acc = r["finite_test_accuracy"]
    lines.append(
        f"mean rank correlation {r['mean_rank_correlation']:.2f}; same top layer for "
        f"{100 * r['top_layer_agreement']:.0f}% of classes; finite test accuracy "
        + ("n/a" if acc is None else f"{100 * acc:.2f}%")
    )
    lines.append(f"results        {run}")
    return "\n".join(lines)


def slope_note(study: Any) -> str | None:
    """Why the prediction slope is not about -0.5, or None when it is.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> s = NS(slope_pred=-0.16, slope_ntk=-0.5, opt_gap=0.08, steps=20,
        ...        pred_gap=np.array([[0.3], [0.12]]), widths=np.array([64, 1024]),
        ...        seeds=np.array([0]))
        >>> print(slope_note(s))
        note: the prediction slope -0.16 is not about -0.5 because the networks are not trained to convergence: trained by the same 20 gradient steps, even the infinite-width network is still 0.080 (relative) from its converged predictions, which the gaps (0.120 at width 1024) cannot fall below; raise --train-steps
    """  # noqa: E501
    slope = study.slope_pred
    if not math.isfinite(slope) or abs(slope - EXPECTED_SLOPE) <= SLOPE_TOLERANCE:
        return None
    gaps = np.mean(np.asarray(study.pred_gap), axis=1)
    widest = float(gaps[-1])
    opt = float(getattr(study, "opt_gap", math.nan))
    head = f"note: the prediction slope {slope:.2f} is not about -0.5 because "
    if math.isfinite(opt) and opt > 0.25 * widest:
        return head + (
            f"the networks are not trained to convergence: trained by the same "
            f"{study.steps} gradient steps, even the infinite-width network is still "
            f"{opt:.3f} (relative) from its converged predictions, which the gaps "
            f"({widest:.3f} at width {int(study.widths[-1])}) cannot fall below; "
            "raise --train-steps"
        )
    return head + (
        f"the fit over {len(study.widths)} widths and {len(study.seeds)} seed(s) is "
        "noisy (finite-width fluctuations, not optimisation: the infinite-width "
        f"network is {opt:.3f} from convergence); add --seeds or wider --widths"
    )


def compare_summary(study: Any, run: Path) -> str:
    """The table, the slopes and (when needed) why a slope is off."""
    lines = [f"{'width':>6}  {'pred gap':>9}  {'NTK gap':>8}  {'finite acc':>10}"]
    for i, w in enumerate(study.widths):
        lines.append(
            f"{w:>6}  {np.mean(study.pred_gap[i]):9.4f}  "
            f"{np.mean(study.ntk_gap[i]):8.4f}  "
            f"{100 * np.nanmean(study.acc_finite[i]):9.2f}%"
        )
    lines.append(
        f"infinite-width accuracy {100 * study.acc_infinite:.2f}%; log-log slopes: "
        f"predictions {study.slope_pred:.2f}, NTK {study.slope_ntk:.2f} "
        "(about -0.5 expected)"
    )
    note = slope_note(study)
    if note:
        lines.append(note)
    lines.append(f"results        {run}")
    return "\n".join(lines)
