"""The t-SNE figure: one query and its top retrieved documents per model, coloured by the expert that
routed each document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.manifold import TSNE

from sbmoe.analysis.figures.canvas import FT_COLOUR, colours, save_figure
from sbmoe.io.encoded import mapped_array
from sbmoe.io.runs import read_trec_run, trec_order


def ranked_run(path: str | Path, depth: int = 1000) -> dict[str, list[str]]:
    """A TREC run file as document ids per query, best first (in trec_eval's order, as runs are
    written), the top ``depth`` of each."""
    run = read_trec_run(path)
    return {qid: [doc for doc, _ in trec_order(scores)[:depth]] for qid, scores in run.items()}


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
        embeddings = mapped_array(path, "embeddings")
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


@dataclass
class _Embedded:
    """One panel's documents (best first), their experts, and the t-SNE coordinates of the query
    (first row) and the documents."""

    panel: TsnePanel
    documents: list[str]
    experts: np.ndarray
    coordinates: np.ndarray
    query_expert: int


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
    drawn = [_embed(panel, run[qid], qid, seed, perplexity) for panel, run in zip(panels, runs)]
    palette = colours(max((int(item.experts.max()) + 1 for item in drawn), default=0))
    figure = Figure(figsize=(4.2 * len(panels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    described = [_draw_panel(axis, item, relevant, palette) for axis, item in zip(axes, drawn)]
    handles = _legend(palette, any(item.experts.min() < 0 for item in drawn))
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


def _embed(panel: TsnePanel, documents: list[str], qid: str, seed: int, perplexity: float) -> _Embedded:
    """The query and its documents of one panel, read from the encoded texts and laid out by t-SNE."""
    query_embedding, query_expert = load_encoded(panel.queries, [qid])
    embeddings, experts = load_encoded(panel.corpus, documents)
    points = np.vstack([query_embedding, embeddings])
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(points) - 1) / 3), init="pca", random_state=seed)
    return _Embedded(panel, documents, experts, tsne.fit_transform(points), int(query_expert[0]))


def _draw_panel(axis, item: _Embedded, relevant: set[str], palette: list) -> dict:
    """Scatter one panel: documents by expert, relevant ones as stars, the query as a cross; returns
    what it shows."""
    is_relevant = np.array([doc in relevant for doc in item.documents])
    points = item.coordinates[1:]
    point_colours = np.array([to_rgba(palette[e] if e >= 0 else FT_COLOUR) for e in item.experts])
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
    axis.scatter(*item.coordinates[0], s=160, marker="X", c="black", edgecolors="white", linewidths=1.0, zorder=4)
    title = f"{item.panel.label}\n{int(is_relevant.sum())} relevant in top {len(item.documents)}"
    if item.query_expert >= 0:
        title += f"; query to expert {item.query_expert + 1}"
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    return {
        "label": item.panel.label,
        "documents": len(item.documents),
        "relevant_retrieved": int(is_relevant.sum()),
        "experts_used": sorted({int(e) + 1 for e in item.experts if e >= 0}),
        "query_expert": item.query_expert + 1 if item.query_expert >= 0 else None,
    }


def _legend(palette: list, any_without_gate: bool) -> list[Line2D]:
    """Legend entries: one per expert, "No gate" when a model has none, relevant documents and the query."""
    handles = [
        Line2D([], [], ls="", marker="o", color=colour, label=f"Expert {index + 1}")
        for index, colour in enumerate(palette)
    ]
    if any_without_gate:
        handles.append(Line2D([], [], ls="", marker="o", color=FT_COLOUR, label="No gate"))
    handles += [
        Line2D(
            [], [], ls="", marker="*", markersize=11, markerfacecolor="white", markeredgecolor="black", label="Relevant"
        ),
        Line2D([], [], ls="", marker="X", markersize=9, color="black", label="Query"),
    ]
    return handles
