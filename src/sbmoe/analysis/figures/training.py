"""The training-curves figure: loss, validation loss, gate gradient norm, routing entropy and expert load per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sbmoe.analysis.figures.canvas import colours, save_figure
from sbmoe.io.collection import read_jsonl
from sbmoe.io.errors import DataFormatError

_CURVES = (
    ("loss", "Training loss", "linear"),
    ("val_loss", "Validation loss", "linear"),
    ("gate_grad_norm", "Gate gradient norm", "symlog"),
    ("routing_entropy", "Routing entropy (nats)", "linear"),
)
_LOADS_PER_ROW = 3
_CURVES_HEIGHT = 5.2
_LOAD_ROW_HEIGHT = 2.4


def read_training_log(path: str | Path) -> pd.DataFrame:
    """A training log (JSON lines, one per epoch) as a DataFrame sorted by epoch."""
    epochs = [record for _, record in read_jsonl(path, key="epoch", kind="training log")]
    if not epochs:
        raise DataFormatError(path, None, "empty training log (expected one JSON object per epoch)")
    return pd.DataFrame(epochs).sort_values("epoch", kind="stable").reset_index(drop=True)


def moe_layer_series(label: str, frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A Regular MoE's routing per MoE layer (``layer_routing`` in its log), as series of their own:
    ``(<label>, layer <i>)`` with the layer's routing entropy and token load per epoch."""
    if "layer_routing" not in frame or frame["layer_routing"].isna().all():
        return []
    layers = sorted({index for entry in frame["layer_routing"].dropna() for index in entry}, key=int)
    return [
        (
            f"{label}, layer {index}",
            pd.DataFrame(
                {
                    "epoch": frame["epoch"],
                    "routing_entropy": [
                        entry.get(index, {}).get("routing_entropy") if entry else None
                        for entry in frame["layer_routing"]
                    ],
                    "expert_load": [
                        entry.get(index, {}).get("expert_load") if entry else None for entry in frame["layer_routing"]
                    ],
                }
            ),
        )
        for index in layers
    ]


def training_curves_figure(logs: Sequence[tuple[str, str | Path]], pdf_path: str | Path, png_path: str | Path) -> dict:
    """Training curves from ``(label, log path)`` pairs: one line per system for loss, validation
    loss, gate gradient norm (symmetric-log axis, so an exact zero shows) and routing entropy, and
    one stacked-area panel of expert load per epoch for each system that logs it; a Regular MoE's
    layers add a routing entropy line and a (token) load panel each."""
    systems = [(label, read_training_log(path)) for label, path in logs]
    if not systems:
        raise ValueError("no training logs to plot")
    frames = systems + [series for label, frame in systems for series in moe_layer_series(label, frame)]
    with_load = [(label, frame) for label, frame in frames if frame["expert_load"].notna().any()]
    load_rows = math.ceil(len(with_load) / _LOADS_PER_ROW)
    heights = [_CURVES_HEIGHT, _LOAD_ROW_HEIGHT * load_rows]
    figure = Figure(figsize=(9, sum(heights)), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=heights) if load_rows else (figure, None)
    _draw_curves(top, frames)
    if bottom is not None:
        _draw_loads(bottom, with_load, load_rows)
    save_figure(figure, pdf_path, png_path)
    return {
        "systems": [
            {
                "label": label,
                "epochs": int(frame["epoch"].max()),
                "best_epoch": int(frame.loc[frame["best"].astype(bool), "epoch"].iloc[-1])
                if frame["best"].any()
                else None,
            }
            for label, frame in systems
        ]
    }


def _draw_curves(top, frames: list[tuple[str, pd.DataFrame]]) -> None:
    """The four per-epoch curves, one line per series, and their legend."""
    palette = colours(len(frames))
    axes = top.subplots(2, len(_CURVES) // 2, sharex=True).ravel()
    for axis, (column, title, scale) in zip(axes, _CURVES):
        for (label, frame), colour in zip(frames, palette):
            values = pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(dtype=float)
            if values.notna().any():
                axis.plot(frame["epoch"], values, marker=".", color=colour, label=label)
        axis.set_title(title, fontsize=10)
        if scale == "symlog":
            positive = [v for _, f in frames if column in f for v in pd.to_numeric(f[column], errors="coerce") if v > 0]
            axis.set_yscale("symlog", linthresh=min(positive, default=1.0))
        axis.grid(alpha=0.3)
    for axis in axes[len(axes) // 2 :]:
        axis.set_xlabel("Epoch")
    top.legend(
        handles=[Line2D([], [], color=colour, marker=".", label=label) for (label, _), colour in zip(frames, palette)],
        loc="outside lower center",
        ncol=min(len(frames), 3),
        frameon=False,
        fontsize=9,
    )


def _draw_loads(bottom, with_load: list[tuple[str, pd.DataFrame]], load_rows: int) -> None:
    """One stacked-area panel of expert load per epoch for each series that logs it, and their legend."""
    load_axes = bottom.subplots(load_rows, min(len(with_load), _LOADS_PER_ROW), squeeze=False).ravel()
    for axis, (label, frame) in zip(load_axes, with_load):
        loads = np.array([load for load in frame["expert_load"] if load is not None], dtype=float)
        epochs = frame.loc[frame["expert_load"].notna(), "epoch"]
        axis.stackplot(
            epochs,
            loads.T,
            colors=colours(loads.shape[1]),
            labels=[f"Expert {i + 1}" for i in range(loads.shape[1])],
        )
        axis.set_ylim(0, 1)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("Epoch")
    for axis in load_axes[len(with_load) :]:
        axis.set_visible(False)
    load_axes[0].set_ylabel("Expert load (share of texts, or tokens in a layer)")
    most = max(len(f["expert_load"].dropna().iloc[0]) for _, f in with_load)
    bottom.legend(
        handles=[Line2D([], [], lw=6, color=c, label=f"Expert {i + 1}") for i, c in enumerate(colours(most))],
        loc="outside right center",
        frameon=False,
        fontsize=8,
    )
