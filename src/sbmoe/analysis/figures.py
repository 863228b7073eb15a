"""The paper's figures, drawn with matplotlib's Agg canvas and saved as PDF and PNG atomically.

- :func:`expert_count_figure`: FT against SB-MoE with each number of experts, per dataset.
- :func:`tsne_figure`: t-SNE of one query and its top retrieved documents, coloured by the
  expert that routed each document, relevant documents starred; one panel per model.
- :func:`training_curves_figure`: loss, validation loss, gate gradient norm, routing entropy and
  expert load per epoch, from the training logs (and per MoE layer of a Regular MoE).
- :func:`routing_figure`: how a router's choices split over the expert retrievers per test set,
  beside its mean soft weights and the oracle's split.

Each function returns a JSON-serialisable dict describing what it drew (for captions and macros).
"""

from __future__ import annotations

import math
import struct
import textwrap
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.manifold import TSNE

from sbmoe.io.atomic import atomic_path
from sbmoe.io.collection import read_jsonl
from sbmoe.io.errors import DataFormatError
from sbmoe.evaluation.results import METRIC_LABELS, aggregate_seeds
from sbmoe.io.runs import read_trec_run, trec_order
from sbmoe.selection.comparison import choice_shares
from sbmoe.selection.experts import expert_label

FT_COLOUR = "0.55"
PNG_DPI = 200
_MAX_WIDTH = 10.0  # inches; wider figures would print with unreadable text at the paper's width
_TICK_CHARACTERS = 12  # dataset names longer than this wrap onto several lines


def save_figure(figure: Figure, pdf_path: str | Path, png_path: str | Path) -> None:
    """Save ``figure`` as PDF and PNG, each atomically."""
    FigureCanvasAgg(figure)
    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=PNG_DPI, bbox_inches="tight")


def _colours(count: int, name: str = "tab10") -> list:
    from matplotlib import colormaps

    palette = colormaps[name if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def expert_count_figure(
    results: pd.DataFrame,
    datasets: Sequence[tuple[str, str]],
    pdf_path: str | Path,
    png_path: str | Path,
    encoder: str | None = None,
    combination: str = "paper",
    pooling: str = "top1",
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    dataset_labels: Mapping[str, str] | None = None,
) -> dict:
    """Bar chart per dataset: FT and SB-MoE (``sbmoe-<combination>-e<E>``, given pooling) for every
    number of experts present; one subplot per metric; error bars = standard deviation over seeds.

    ``datasets`` are ``(trainset, testset)`` pairs in x order. ``encoder`` may be left out when the
    results hold one encoder.
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
    colours = [FT_COLOUR] + _colours(len(counts), "viridis" if len(counts) > 10 else "tab10")

    width = min(_MAX_WIDTH, max(6.0, 0.3 * len(datasets) * (1 + len(configurations))))
    figure = Figure(figsize=(width, 2.4 * len(metrics)))
    axes = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    positions = np.arange(len(datasets))
    bar_width = 0.8 / len(configurations)
    plotted = {"encoder": encoder, "combination": combination, "pooling": pooling, "bars": []}
    for axis, metric in zip(axes, metrics):
        for index, ((system, label), colour) in enumerate(zip(configurations, colours)):
            found = [cells.get((system, *pair)) for pair in datasets]
            means = [cell[metric] if cell else math.nan for cell in found]
            errors = [cell[f"{metric}_std"] if cell else 0.0 for cell in found]
            offsets = positions - 0.4 + bar_width * (index + 0.5)
            axis.bar(offsets, means, bar_width, yerr=errors, color=colour, label=label, capsize=2, ecolor="0.2")
            plotted["bars"] += [
                {"configuration": label, "metric": metric, "testset": pair[1], "mean": mean, "std": error}
                for pair, mean, error in zip(datasets, means, errors)
                if not math.isnan(mean)
            ]
        axis.set_ylabel(METRIC_LABELS.get(metric, metric))
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    names = [(dataset_labels or {}).get(t, t) for _, t in datasets]
    axes[-1].set_xticks(positions, [textwrap.fill(name, _TICK_CHARACTERS) for name in names])
    axes[0].legend(ncol=len(configurations), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    save_figure(figure, pdf_path, png_path)
    return plotted


def ranked_run(path: str | Path, depth: int = 1000) -> dict[str, list[str]]:
    """A TREC run file as document ids per query, best first (in trec_eval's order, as runs are
    written), the top ``depth`` of each."""
    run = read_trec_run(path)
    return {qid: [doc for doc, _ in trec_order(scores)[:depth]] for qid, scores in run.items()}


def _stored_member(path: str | Path, name: str) -> np.ndarray | None:
    """Memory-map the ``name`` array of an uncompressed npz (None when it is compressed)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = reader(member)
            array_offset = member.tell()
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local_header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", local_header[26:30])
    offset = info.header_offset + 30 + name_length + extra_length + array_offset
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def load_encoded(paths: str | Path | Sequence[str | Path], ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and routed experts of the texts ``ids`` (in that order) from encoded-texts npz
    files (one file, or the shards of a corpus).

    The embeddings are memory-mapped when an npz is uncompressed, so a large corpus is not read whole.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    wanted = set(ids)
    found: dict[str, tuple[np.ndarray, int]] = {}
    for path in paths:
        with np.load(path, allow_pickle=False) as encoded:
            shard_ids = encoded["ids"].tolist()
            experts = np.asarray(encoded["experts"], dtype=int)
        rows = [row for row, text_id in enumerate(shard_ids) if text_id in wanted]
        if not rows:
            continue
        embeddings = _stored_member(path, "embeddings")
        if embeddings is None:
            with np.load(path, allow_pickle=False) as encoded:
                embeddings = encoded["embeddings"]
        selected = np.asarray(embeddings[rows], dtype=np.float32)
        found.update((shard_ids[row], (vector, experts[row])) for row, vector in zip(rows, selected))
    missing = [text_id for text_id in ids if text_id not in found]
    if missing:
        raise KeyError(f"{paths}: {len(missing)} ids not encoded, e.g. {missing[:3]}")
    return np.stack([found[text_id][0] for text_id in ids]), np.array([found[text_id][1] for text_id in ids])


@dataclass
class TsnePanel:
    """One t-SNE panel: a model's run and its encoded queries and corpus (one npz or its shards) on
    one test set."""

    label: str
    run: str | Path
    queries: str | Path
    corpus: str | Path | Sequence[str | Path]


def choose_query(
    runs: Sequence[Mapping[str, Sequence[str]]], qrels: Mapping[str, Mapping[str, int]], seed: int, min_grade: int = 1
) -> tuple[str, int]:
    """A query drawn with ``seed`` among those with a relevant document (grade >= ``min_grade``)
    in every run; returns the query id and the number of candidates."""
    candidates = sorted(
        qid
        for qid in set(runs[0]).intersection(*runs[1:])
        if all(any(qrels.get(qid, {}).get(doc, 0) >= min_grade for doc in run[qid]) for run in runs)
    )
    if not candidates:
        raise ValueError("no query has a relevant document in every run")
    return candidates[int(np.random.default_rng(seed).integers(len(candidates)))], len(candidates)


def tsne_figure(
    panels: Sequence[TsnePanel],
    qrels: Mapping[str, Mapping[str, int]],
    pdf_path: str | Path,
    png_path: str | Path,
    seed: int = 0,
    depth: int = 1000,
    min_grade: int = 1,
    perplexity: float = 30.0,
) -> dict:
    """t-SNE of one query and its top-``depth`` documents, one panel per model.

    The query is chosen by :func:`choose_query` with ``seed``; t-SNE uses ``random_state=seed``.
    Documents are coloured by the expert that routed them (npz ``experts``; one grey for models
    without a gate); relevant documents are stars outlined in black; the query is a black cross.
    """
    runs = [ranked_run(panel.run, depth) for panel in panels]
    qid, candidates = choose_query(runs, qrels, seed, min_grade)
    relevant = {doc for doc, grade in qrels[qid].items() if grade >= min_grade}
    most_experts = 0
    drawn = []
    for panel, run in zip(panels, runs):
        documents = run[qid]
        query_embedding, query_expert = load_encoded(panel.queries, [qid])
        embeddings, experts = load_encoded(panel.corpus, documents)
        points = np.vstack([query_embedding, embeddings])
        tsne = TSNE(
            n_components=2,
            perplexity=min(perplexity, (len(points) - 1) / 3),
            init="pca",
            random_state=seed,
        )
        drawn.append((panel, documents, experts, tsne.fit_transform(points), int(query_expert[0])))
        most_experts = max(most_experts, int(experts.max()) + 1)

    colours = _colours(most_experts)
    figure = Figure(figsize=(4.2 * len(panels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    described = []
    for axis, (panel, documents, experts, coordinates, query_expert) in zip(axes, drawn):
        is_relevant = np.array([doc in relevant for doc in documents])
        points = coordinates[1:]
        point_colours = np.array([to_rgba(colours[e] if e >= 0 else FT_COLOUR) for e in experts])
        axis.scatter(*points[~is_relevant].T, s=6, c=point_colours[~is_relevant], linewidths=0)
        axis.scatter(
            *points[is_relevant].T,
            s=140,
            marker="*",
            c=point_colours[is_relevant],
            edgecolors="black",
            linewidths=0.8,
            zorder=3,
        )
        axis.scatter(*coordinates[0], s=160, marker="X", c="black", edgecolors="white", linewidths=1.0, zorder=4)
        title = f"{panel.label}\n{int(is_relevant.sum())} relevant in top {len(documents)}"
        if query_expert >= 0:
            title += f"; query to expert {query_expert + 1}"
        axis.set_title(title, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        described.append(
            {
                "label": panel.label,
                "documents": len(documents),
                "relevant_retrieved": int(is_relevant.sum()),
                "experts_used": sorted({int(e) + 1 for e in experts if e >= 0}),
                "query_expert": query_expert + 1 if query_expert >= 0 else None,
            }
        )
    handles = [
        Line2D([], [], ls="", marker="o", color=colour, label=f"Expert {index + 1}")
        for index, colour in enumerate(colours)
    ]
    if any(e.min() < 0 for _, _, e, _, _ in drawn):
        handles.append(Line2D([], [], ls="", marker="o", color=FT_COLOUR, label="No gate"))
    handles += [
        Line2D(
            [], [], ls="", marker="*", markersize=11, markerfacecolor="white", markeredgecolor="black", label="Relevant"
        ),
        Line2D([], [], ls="", marker="X", markersize=9, color="black", label="Query"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), frameon=False, fontsize=8)
    save_figure(figure, pdf_path, png_path)
    return {
        "qid": qid,
        "seed": seed,
        "depth": depth,
        "min_grade": min_grade,
        "candidates": candidates,
        "panels": described,
    }


def read_training_log(path: str | Path) -> pd.DataFrame:
    """A training log (JSON lines, one per epoch) as a DataFrame sorted by epoch."""
    epochs = [record for _, record in read_jsonl(path, key="epoch", kind="training log")]
    if not epochs:
        raise DataFormatError(path, None, "empty training log (expected one JSON object per epoch)")
    return pd.DataFrame(epochs).sort_values("epoch", kind="stable").reset_index(drop=True)


_CURVES = (
    ("loss", "Training loss", "linear"),
    ("val_loss", "Validation loss", "linear"),
    ("gate_grad_norm", "Gate gradient norm", "symlog"),
    ("routing_entropy", "Routing entropy (nats)", "linear"),
)
_LOADS_PER_ROW = 3
_CURVES_HEIGHT = 5.2
_LOAD_ROW_HEIGHT = 2.4


def moe_layer_series(label: str, frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A Regular MoE's routing per MoE layer (``layer_routing`` in its log), as series of their own:
    ``(<label>, layer <i>)`` with the layer's routing entropy and token load per epoch."""
    if "layer_routing" not in frame or frame["layer_routing"].isna().all():
        return []
    layers = sorted({index for entry in frame["layer_routing"].dropna() for index in entry}, key=int)
    return [
        (f"{label}, layer {index}", pd.DataFrame({
            "epoch": frame["epoch"],
            "routing_entropy": [entry.get(index, {}).get("routing_entropy") if entry else None for entry in frame["layer_routing"]],
            "expert_load": [entry.get(index, {}).get("expert_load") if entry else None for entry in frame["layer_routing"]],
        }))
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
    colours = _colours(len(frames))
    axes = top.subplots(2, len(_CURVES) // 2, sharex=True).ravel()
    for axis, (column, title, scale) in zip(axes, _CURVES):
        for (label, frame), colour in zip(frames, colours):
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
        handles=[Line2D([], [], color=colour, marker=".", label=label) for (label, _), colour in zip(frames, colours)],
        loc="outside lower center",
        ncol=min(len(frames), 3),
        frameon=False,
        fontsize=9,
    )
    if bottom is not None:
        load_axes = bottom.subplots(load_rows, min(len(with_load), _LOADS_PER_ROW), squeeze=False).ravel()
        for axis, (label, frame) in zip(load_axes, with_load):
            loads = np.array([load for load in frame["expert_load"] if load is not None], dtype=float)
            epochs = frame.loc[frame["expert_load"].notna(), "epoch"]
            axis.stackplot(
                epochs,
                loads.T,
                colors=_colours(loads.shape[1]),
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
            handles=[Line2D([], [], lw=6, color=c, label=f"Expert {i + 1}") for i, c in enumerate(_colours(most))],
            loc="outside right center",
            frameon=False,
            fontsize=8,
        )
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
    colours = dict(zip(experts, _colours(len(experts))))
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
            y = top + offset
            left = 0.0
            for name, value in zip(share["experts"], share[key]):
                axis.barh(y, value, left=left, color=colours[name], edgecolor="white", linewidth=0.5)
                if value >= 0.08:
                    axis.text(left + value / 2, y, f"{100 * value:.0f}%", ha="center", va="center", fontsize=7)
                left += value
            ticks.append(y)
            names.append(bar)
        plotted.append({"trainset": pair[0], "testset": pair[1], **share})
    axis.set_yticks(ticks, names, fontsize=8)
    axis.set_ylim(len(pairs) * (len(_ROUTING_BARS) + 1) - 0.4, -0.3)
    axis.set_xlim(0, 1)
    axis.set_xlabel("Share of test queries")
    figure.legend(
        handles=[Line2D([], [], lw=6, color=colours[name], label=expert_label(name)) for name in experts],
        loc="outside lower center", ncol=min(len(experts), 3), frameon=False, fontsize=8,
    )
    save_figure(figure, pdf_path, png_path)
    return {"pairs": plotted}
