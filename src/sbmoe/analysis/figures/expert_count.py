"""The number-of-experts figure: FT against SB-MoE with each number of experts, per dataset and metric."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sbmoe.analysis.figures.canvas import FT_COLOUR, colours, save_figure
from sbmoe.evaluation.results import aggregate_seeds
from sbmoe.systems.labels import metric_label

_MAX_WIDTH = 10.0  # inches; wider figures would print with unreadable text at the paper's width
_TICK_CHARACTERS = 12  # dataset names longer than this wrap onto several lines


def expert_count_figure(
    results: pd.DataFrame,
    datasets: Sequence[tuple[str, str]],
    pdf_path: str | Path,
    png_path: str | Path,
    encoder: str | None = None,
    combination: str = "paper",
    pooling: str = "top1",
    *,
    metrics: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
) -> dict:
    """Bar chart per dataset: FT and SB-MoE (``sbmoe-<combination>-e<E>``, given pooling) for every
    number of experts present; one subplot per metric; error bars = standard deviation over seeds.

    ``datasets`` are ``(trainset, testset)`` pairs in x order. ``encoder`` may be left out when the
    results hold one encoder. Returns the bars drawn.
    """
    if encoder is None:
        encoders = sorted(set(results["encoder"]))
        if len(encoders) != 1:
            raise ValueError(f"results hold encoders {encoders}; say which one to plot")
        encoder = encoders[0]
    ours = results[results["encoder"] == encoder]
    is_moe = (ours["variant"] == "sbmoe") & (ours["combination"] == combination) & (ours["pooling"] == pooling)
    chosen = ours[(ours["system"] == "finetune") | is_moe]
    summary = aggregate_seeds(chosen, metrics)
    cells = {(r["system"], r["trainset"], r["testset"]): r for r in summary.to_dict("records")}
    counts = sorted(set(chosen.loc[chosen["variant"] == "sbmoe", "num_experts"].astype(int)))
    configurations = [("finetune", "FT")] + [(f"sbmoe-{combination}-e{count}", f"E={count}") for count in counts]
    palette = [FT_COLOUR] + colours(len(counts), "viridis" if len(counts) > 10 else "tab10")

    width = min(_MAX_WIDTH, max(6.0, 0.3 * len(datasets) * (1 + len(configurations))))
    figure = Figure(figsize=(width, 2.4 * len(metrics)))
    axes = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    plotted = {"encoder": encoder, "combination": combination, "pooling": pooling, "bars": []}
    for axis, metric in zip(axes, metrics):
        plotted["bars"] += _metric_bars(axis, metric, configurations, palette, cells, datasets)
    names = [(dataset_labels or {}).get(t, t) for _, t in datasets]
    axes[-1].set_xticks(np.arange(len(datasets)), [textwrap.fill(name, _TICK_CHARACTERS) for name in names])
    axes[0].legend(ncol=len(configurations), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    save_figure(figure, pdf_path, png_path)
    return plotted


def _metric_bars(axis, metric: str, configurations, palette, cells: Mapping, datasets) -> list[dict]:
    """One metric's subplot: a group of bars per dataset, one bar per configuration; returns the bars."""
    positions = np.arange(len(datasets))
    bar_width = 0.8 / len(configurations)
    bars = []
    for index, ((system, label), colour) in enumerate(zip(configurations, palette)):
        found = [cells.get((system, *pair)) for pair in datasets]
        means = [cell[metric] if cell else math.nan for cell in found]
        errors = [cell[f"{metric}_std"] if cell else 0.0 for cell in found]
        offsets = positions - 0.4 + bar_width * (index + 0.5)
        axis.bar(offsets, means, bar_width, yerr=errors, color=colour, label=label, capsize=2, ecolor="0.2")
        bars += [
            {"configuration": label, "metric": metric, "testset": pair[1], "mean": mean, "std": error}
            for pair, mean, error in zip(datasets, means, errors)
            if not math.isnan(mean)
        ]
    axis.set_ylabel(metric_label(metric))
    axis.grid(axis="y", alpha=0.3)
    axis.set_axisbelow(True)
    return bars
