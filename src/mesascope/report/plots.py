"""Plots for the HTML report, drawn with matplotlib (Agg backend) straight to inline SVG text.

Render only: every function takes numbers already in the run folder (audit.json, training.npz,
curve.json) and returns an `<svg>` string. Output is deterministic (fixed hash salt, no date), so the same
run folder always gives the same report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend: reports are written on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mesascope.report.html import prefix_svg_ids  # noqa: E402

__all__ = [
    "COLOURS",
    "curve_svg",
    "grid_curve_svg",
    "first_reached_svg",
    "learning_curves_svg",
    "score_distributions_svg",
]

COLOURS = {
    "train": "#3b6ea8",
    "deploy": "#d9822b",
    "uniform": "#7b8794",
    "ink": "#1f2933",
    "grid": "#e4e7eb",
}
"""One palette for the whole report (the CSS uses the same values)."""

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, styled by the page's font
    "svg.hashsalt": "mesascope",  # deterministic element ids
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": "#9aa5b1",
    "axes.labelcolor": COLOURS["ink"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": COLOURS["grid"],
    "grid.linewidth": 0.8,
    "xtick.color": "#52606d",
    "ytick.color": "#52606d",
    "legend.frameon": False,
}


def _to_svg(fig: plt.Figure, prefix: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "mesascope"})
    plt.close(fig)
    text = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE (the SVG is inlined in HTML) and make the ids unique in the page:
    # every matplotlib figure numbers its elements from 1.
    return prefix_svg_ids(text[text.index("<svg") :], prefix)


def _jitter(n: int, width: float = 0.18) -> np.ndarray:
    """Deterministic horizontal offsets for `n` dots (no randomness in a report)."""
    if n <= 1:
        return np.zeros(n)
    return np.linspace(-width, width, n)


def score_distributions_svg(
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    objectives: Sequence[str],
    uniform: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """Normalised scores of every seed, train next to deploy, one group per objective.

    Args:
        scores: `scores[split][objective]` = the seeds' `J` values (split in `train`, `deploy`).
        objectives: Objectives in display order (base, intended, then each candidate goal).
        uniform: `uniform[split][objective]`, the uniform-random policy's score (0 by definition of J).

    Returns:
        An `<svg>` string: one dot per seed, a bar at the mean, the optimum (1) and uniform (0) marked.
    """
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(objectives) + 1.5), 3.2))
        for i, obj in enumerate(objectives):
            for k, split in enumerate(("train", "deploy")):
                xs = i + (k - 0.5) * 0.38
                ys = np.asarray(scores[split][obj], float)
                if ys.size:
                    ax.scatter(xs + _jitter(ys.size, 0.09), ys, s=22, color=COLOURS[split], zorder=3,
                               edgecolor="white", linewidth=0.6, label=split if i == 0 else None)
                    ax.hlines(ys.mean(), xs - 0.15, xs + 0.15, color=COLOURS[split], linewidth=2.2, zorder=4)
        ax.axhline(1.0, color="#52606d", linewidth=0.8, linestyle=":", zorder=1)
        ax.axhline(0.0, color=COLOURS["uniform"], linewidth=1.0, linestyle="--", zorder=1)
        edge = ax.get_yaxis_transform()  # x in axes fraction: the labels sit just right of the plot
        ax.text(1.01, 1.0, "optimal", transform=edge, va="center", fontsize=8, color="#52606d")
        ax.text(1.01, 0.0, "uniform", transform=edge, va="center", fontsize=8, color=COLOURS["uniform"])
        ax.set_xticks(range(len(objectives)), [f"J_{o}" for o in objectives])
        ax.set_xlim(-0.6, len(objectives) - 0.4)
        ax.set_ylabel("normalised score J")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=8)
        return _to_svg(fig, "plot-scores")


def first_reached_svg(
    first: Mapping[str, Mapping[str, Sequence[float]]],
    goals: Sequence[str],
    uniform: Mapping[str, Mapping[str, float]],
) -> str:
    """Probability that each candidate goal is reached first, per seed, against the uniform baseline.

    Args:
        first: `first[split][goal]` = the seeds' first-reached probabilities.
        goals: Candidate goals in display order (plus `none` if wanted).
        uniform: `uniform[split][goal]`, the uniform-random policy's probability.

    Returns:
        An `<svg>` string with one panel per split.
    """
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, 2, figsize=(max(5.5, 1.3 * len(goals) * 2 + 1.5), 2.8), sharey=True)
        for ax, split in zip(axes, ("train", "deploy")):
            for i, goal in enumerate(goals):
                ys = np.asarray(first[split][goal], float)
                ax.bar(i, ys.mean() if ys.size else 0.0, width=0.55, color=COLOURS[split], alpha=0.35, zorder=2)
                if ys.size:
                    ax.scatter(i + _jitter(ys.size, 0.12), ys, s=18, color=COLOURS[split], zorder=3,
                               edgecolor="white", linewidth=0.5)
                base = uniform.get(split, {}).get(goal)
                if base is not None:
                    ax.hlines(base, i - 0.36, i + 0.36, color=COLOURS["ink"], linewidth=1.4, linestyle="--", zorder=4,
                              label="uniform-random" if i == 0 else None)
            ax.set_xticks(range(len(goals)), list(goals))
            ax.set_title(split, fontsize=9, color=COLOURS[split], fontweight="bold")
            ax.set_ylim(0, 1.02)
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel("P(reached first)")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8)
        return _to_svg(fig, "plot-first")


def learning_curves_svg(curves: Mapping[str, np.ndarray], seeds: Sequence[int], steps_per_update: int | None = None) -> str:
    """Every learning curve of `training.npz`: one panel per metric, a thin line per seed and their mean.

    Args:
        curves: metric name -> float array `[n_seeds, n_updates]`.
        seeds: The seeds, in the arrays' order (for the legend).
        steps_per_update: Environment steps per update, to label the x axis in steps; `None` for updates.

    Returns:
        An `<svg>` string.
    """
    names = [k for k in curves if np.asarray(curves[k]).ndim == 2]
    cols = min(2, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.3 * rows), squeeze=False)
        cmap = plt.get_cmap("Blues")
        for ax, name in zip(axes.flat, names):
            data = np.asarray(curves[name], float)
            x = np.arange(1, data.shape[1] + 1) * (steps_per_update or 1)
            for j in range(data.shape[0]):
                shade = cmap(0.35 + 0.5 * j / max(1, data.shape[0] - 1))
                ax.plot(x, data[j], color=shade, linewidth=0.9, alpha=0.8,
                        label=f"seed {seeds[j]}" if j < len(seeds) else None)
            ax.plot(x, data.mean(0), color=COLOURS["ink"], linewidth=1.6, label="mean")
            ax.set_title(name.replace("_", " "), fontsize=9)
            ax.set_xlabel("environment steps" if steps_per_update else "update")
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        if names:
            axes.flat[0].legend(fontsize=7, loc="best")
        fig.subplots_adjust(hspace=0.6, wspace=0.3)  # fixed spacing: tight_layout doubles the drawing time
        return _to_svg(fig, "plot-curves")


def grid_curve_svg(param: str, series_param: str, lines: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """A sweep over two axes: one panel per metric, a line per value of the second axis.

    Args:
        param: The x axis's parameter name.
        series_param: The parameter whose values are the lines.
        lines: line label -> `{"x": [...], metric: {"mean": [...], "lo": [...], "hi": [...], "uniform": [...]}}`,
            the x values and, per metric, the mean over seeds, the spread band and (optional) the
            uniform-random policy's value, drawn dashed once (`None` marks a missing point).
        metrics: The metrics to draw, in panel order.

    Returns:
        An `<svg>` string. The x values sit at even steps, labelled (sweeps of a share such as alpha span
        orders of magnitude and include 0, which no numeric scale shows evenly).
    """
    xs = sorted({v for line in lines.values() for v in line["x"]}, key=lambda v: (isinstance(v, str), v))
    pos = {v: i for i, v in enumerate(xs)}
    palette = [COLOURS["deploy"], COLOURS["train"], "#5c946e", "#8e6c8a", "#c9a227", "#4a4a4a"]

    def arr(seq: Sequence[float | None]) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in seq], float)

    with plt.rc_context(_RC):
        n = max(1, len(metrics))
        cols = min(3, n)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.9 * rows), squeeze=False)
        for ax, metric in zip(axes.flat, metrics):
            for k, (label, line) in enumerate(lines.items()):
                colour = palette[k % len(palette)]
                x = np.asarray([pos[v] for v in line["x"]], float)
                data = line.get(metric) or {}
                mean = arr(data.get("mean") or [None] * len(x))
                lo, hi = arr(data.get("lo") or [None] * len(x)), arr(data.get("hi") or [None] * len(x))
                band = np.isfinite(lo) & np.isfinite(hi)
                if band.any():
                    ax.fill_between(x[band], lo[band], hi[band], color=colour, alpha=0.12, linewidth=0)
                ok = np.isfinite(mean)
                ax.plot(x[ok], mean[ok], color=colour, marker="o", markersize=4, linewidth=1.6,
                        label=f"{series_param}={label}", zorder=4)
            first = next(iter(lines.values()), {})
            uniform = arr(((first.get(metric) or {}).get("uniform")) or [None] * len(first.get("x", [])))
            if np.isfinite(uniform).any():  # the uniform-random policy's value does not depend on the line
                x = np.asarray([pos[v] for v in first["x"]], float)
                fine = np.isfinite(uniform)
                ax.plot(x[fine], uniform[fine], color=COLOURS["ink"], linestyle="--", linewidth=1.1,
                        label="uniform-random", zorder=2)
            ax.set_title(metric.replace("_", " "), fontsize=9)
            ax.set_xlabel(param)
            ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in xs])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7, loc="best")
        fig.subplots_adjust(wspace=0.3, hspace=0.45)
        return _to_svg(fig, "plot-sweep-grid")


def curve_svg(param: str, values: Sequence[object], series: Mapping[str, Mapping[str, Sequence[float | None]]]) -> str:
    """A sweep curve: each metric's mean over seeds against the swept value, with the seed spread.

    Args:
        param: The swept parameter's name (x axis label).
        values: The swept values, in order (numbers are placed on a numeric axis, anything else evenly).
        series: metric -> `{"mean": [...], "lo": [...], "hi": [...], "seeds": [[...], ...], "uniform": [...]}`,
            one entry per value; `lo`/`hi` bound the shaded spread, `seeds` (optional) are drawn as dots,
            `uniform` (optional) as a dashed baseline. `None` marks a missing point.

    Returns:
        An `<svg>` string with one panel per metric.
    """
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, float) if numeric else np.arange(len(values), dtype=float)
    palette = [COLOURS["deploy"], COLOURS["train"], "#5c946e", "#8e6c8a"]

    def arr(seq: Sequence[float | None] | None) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in (seq or [None] * len(values))], float)

    with plt.rc_context(_RC):
        n = max(1, len(series))
        fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 2.9), squeeze=False)
        for k, (ax, (metric, data)) in enumerate(zip(axes.flat, series.items())):
            colour = palette[k % len(palette)]
            mean, lo, hi = arr(data.get("mean")), arr(data.get("lo")), arr(data.get("hi"))
            # A failed point has no numbers: join its neighbours rather than break the curve.
            band = np.isfinite(lo) & np.isfinite(hi)
            if band.any():
                ax.fill_between(x[band], lo[band], hi[band], color=colour, alpha=0.18, linewidth=0, label="seed spread")
            for i, seed_values in enumerate(data.get("seeds") or []):
                ys = arr(seed_values) if seed_values else np.zeros(0)
                ax.scatter(np.full(ys.size, x[i]), ys, s=12, color=colour, alpha=0.6, zorder=3, linewidth=0)
            ok = np.isfinite(mean)
            ax.plot(x[ok], mean[ok], color=colour, marker="o", markersize=4, linewidth=1.8, label="mean over seeds", zorder=4)
            uniform = arr(data.get("uniform"))
            if np.isfinite(uniform).any():
                fine = np.isfinite(uniform)
                ax.plot(x[fine], uniform[fine], color=COLOURS["ink"], linestyle="--", linewidth=1.1, label="uniform-random", zorder=2)
            ax.set_title(metric.replace("_", " "), fontsize=9)
            ax.set_xlabel(param)
            if not numeric:
                ax.set_xticks(x, [str(v) for v in values])
            elif len(values) <= 12:
                ax.set_xticks(x, [f"{v:g}" for v in values])  # ticks at the swept values, not in between
            ax.legend(fontsize=7, loc="best")
        fig.subplots_adjust(wspace=0.3)
        return _to_svg(fig, "plot-sweep")
