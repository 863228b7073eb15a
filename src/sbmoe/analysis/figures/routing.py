"""The routing figure: how a router's choices split over the expert retrievers per test set, beside its
mean soft weights and the oracle's split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sbmoe.analysis.figures.canvas import colours, save_figure
from sbmoe.selection.comparison import choice_shares
from sbmoe.systems.labels import expert_label

_ROUTING_BARS = (("router", "Router (hard)"), ("soft", "Router (soft, mean weight)"), ("oracle", "Oracle"))


def routing_figure(
    choices: Mapping[str, Mapping],
    pairs: Sequence[tuple[str, str]],
    pdf_path: str | Path,
    png_path: str | Path,
    dataset_labels: Mapping[str, str] | None = None,
) -> dict:
    """Horizontal stacked bars, one group per ``(trainset, testset)`` pair: the share of test
    queries the router sends to each expert, its mean soft weight per expert, and the oracle's
    split (queries on which the experts tie are left out of it).

    ``choices`` is ``{trainset: {testset: choices}}`` as the routing stage writes it.
    """
    shares = {tuple(pair): choice_shares(choices[pair[0]][pair[1]]) for pair in pairs}
    experts = list(dict.fromkeys(name for share in shares.values() for name in share["experts"]))
    palette = dict(zip(experts, colours(len(experts))))
    several = len({t for t, _ in pairs}) > 1
    figure = Figure(figsize=(8, 1.0 + 1.1 * len(pairs)), layout="constrained")
    axis = figure.subplots()
    ticks, names, plotted = [], [], []
    for group, pair in enumerate(pairs):
        share = shares[tuple(pair)]
        label = (dataset_labels or {}).get(pair[1], pair[1])
        if several or pair[0] != pair[1]:
            label += f" (router: {(dataset_labels or {}).get(pair[0], pair[0])})"
        top = group * (len(_ROUTING_BARS) + 1)
        axis.text(0.005, top + 0.35, label, fontsize=9, fontweight="bold", va="center")  # clear of the spine
        for offset, (key, bar) in enumerate(_ROUTING_BARS, start=1):
            _stacked_bar(axis, top + offset, share["experts"], share[key], palette)
            ticks.append(top + offset)
            names.append(bar)
        plotted.append({"trainset": pair[0], "testset": pair[1], **share})
    axis.set_yticks(ticks, names, fontsize=8)
    axis.set_ylim(len(pairs) * (len(_ROUTING_BARS) + 1) - 0.4, -0.3)
    axis.set_xlim(0, 1)
    axis.set_xlabel("Share of test queries")
    figure.legend(
        handles=[Line2D([], [], lw=6, color=palette[name], label=expert_label(name)) for name in experts],
        loc="outside lower center",
        ncol=min(len(experts), 3),
        frameon=False,
        fontsize=8,
    )
    save_figure(figure, pdf_path, png_path)
    return {"pairs": plotted}


def _stacked_bar(axis, y: float, experts: Sequence[str], values: Sequence[float], palette: Mapping) -> None:
    """One horizontal bar split into the experts' shares, each share of 8% or more printed on it."""
    left = 0.0
    for name, value in zip(experts, values):
        axis.barh(y, value, left=left, color=palette[name], edgecolor="white", linewidth=0.5)
        if value >= 0.08:
            axis.text(left + value / 2, y, f"{100 * value:.0f}%", ha="center", va="center", fontsize=7)
        left += value
