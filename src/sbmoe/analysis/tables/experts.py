"""Table III: experts employed (E) vs experts activated, and the share of queries and documents each expert received."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sbmoe.analysis.latex import Table, latex_escape, row, spanning_header, tabular
from sbmoe.analysis.tables.cells import label_of
from sbmoe.systems.labels import display_label, system_order
from sbmoe.systems.names import parse_system

_KEYS = ("encoder", "trainset", "system", "pooling", "seed", "testset")


def read_routing(paths: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, int]:
    """The expert each text was routed to and the number of experts, from encoded-texts npz files
    (one file, or the shards of a corpus).

    The number of experts is the width of the ``gate`` array (0 for a model without a gate).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    experts, widths = [], set()
    for path in paths:
        with np.load(path, allow_pickle=False) as encoded:
            experts.append(np.asarray(encoded["experts"], dtype=int))
            widths.add(int(encoded["gate"].shape[1]))
    if len(widths) != 1:
        raise ValueError(f"{paths}: shards disagree on the number of experts ({sorted(widths)})")
    employed = widths.pop()
    routed = np.concatenate(experts)
    if employed and ((routed < 0) | (routed >= employed)).any():
        raise ValueError(f"{paths}: expert indices outside [0, {employed})")
    return routed, employed


def expert_usage(experts: np.ndarray, employed: int) -> dict:
    """How many texts each of ``employed`` experts received; ``activated`` = experts with >= 1 text."""
    counts = np.bincount(np.asarray(experts, dtype=int), minlength=employed)[:employed]
    texts = int(counts.sum())
    return {
        "employed": employed,
        "activated": int(np.count_nonzero(counts)),
        "texts": texts,
        "counts": counts.tolist(),
        "shares": (counts / texts).tolist() if texts else [0.0] * employed,
    }


def experts_table(
    records: Iterable[tuple[Mapping, str | Path, str | Path | Sequence[str | Path]]],
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
) -> Table:
    """Table III: experts employed (E) vs experts activated, for queries and documents.

    ``records`` are ``(keys, queries_npz, corpus_npz)``, the corpus as one npz or a list of its
    shards; records of systems without a gate are left out. Activated = experts that received at
    least one text (the routing actually taken, the npz ``experts`` array). The CSV has one row per
    record, side (``queries`` / ``documents``) and expert; the LaTeX summarises it per system
    (:func:`experts_summary`, which names no test set: ``dataset_labels`` is accepted, like every
    table's, and not needed).
    """
    records_out = []
    for keys, usage in _usages(records):
        label = display_label(keys["system"], keys["pooling"])
        records_out += _usage_records(keys, label, usage)
    frame = pd.DataFrame(records_out)
    return Table(experts_summary(frame, encoder_labels), frame)


def _spread(values: pd.Series, digits: int = 0) -> str:
    """A quantity over routings: the value when it never varies, else the mean and the range."""
    low, high = values.min(), values.max()
    if low == high:
        return f"{low:.{digits}f}"
    return f"{values.mean():.1f} ({low:.{digits}f}--{high:.{digits}f})"


def experts_summary(frame: pd.DataFrame, encoder_labels: Mapping[str, str] | None = None) -> str:
    """Table III's LaTeX from its CSV records: one row per encoder and system, over its routings (test
    sets x seeds): the experts activated for queries and for documents, and the percentage of texts
    its busiest expert receives (mean, and range when it varies)."""
    header = [
        *spanning_header([""] * 3, [("Activated", 2), (r"Busiest expert (\%)", 2)]),
        row(["System", "E", "Routings", "Queries", "Docs", "Queries", "Docs"]),
    ]
    if frame.empty:
        return tabular("lcc" + "cccc", header, [])
    routings = (
        frame.groupby([*_KEYS, "side"], sort=False)
        .agg(
            label=("label", "first"),
            employed=("employed", "first"),
            activated=("activated", "first"),
            busiest=("share", "max"),
        )
        .reset_index()
    )
    encoders = list(dict.fromkeys(routings["encoder"]))
    blocks = []
    for encoder in encoders:
        block = (
            [row([rf"\multicolumn{{7}}{{l}}{{\emph{{{latex_escape(label_of(encoder, encoder_labels))}}}}}"])]
            if len(encoders) > 1
            else []
        )
        mine = routings[routings["encoder"] == encoder]
        for (_, _), system in mine.groupby(["system", "pooling"], sort=False):
            queries, documents = system[system["side"] == "queries"], system[system["side"] == "documents"]
            block.append(
                row(
                    [
                        latex_escape(system["label"].iloc[0]),
                        str(int(system["employed"].iloc[0])),
                        str(len(queries)),
                        _spread(queries["activated"]),
                        _spread(documents["activated"]),
                        _spread(100 * queries["busiest"]),
                        _spread(100 * documents["busiest"]),
                    ]
                )
            )
        blocks.append(block)
    return tabular("lcc" + "cccc", header, blocks)


def _usages(records) -> list[tuple[dict, dict]]:
    """``(keys, {side: usage})`` of every record of a system with a gate, in the table's row order."""
    rows = []
    for keys, queries_path, corpus_path in records:
        if parse_system(keys["system"])["variant"] not in ("sbmoe", "random-gate"):
            continue
        usage = {}
        for side, path in (("queries", queries_path), ("documents", corpus_path)):
            experts, employed = read_routing(path)
            if employed == 0:
                raise ValueError(f"{path}: system {keys['system']} has a gate but the npz holds no gate weights")
            usage[side] = expert_usage(experts, employed)
        rows.append((dict(keys), usage))
    rows.sort(
        key=lambda item: (
            item[0]["encoder"],
            system_order(item[0]["system"], item[0]["pooling"]),
            item[0]["testset"],
            str(item[0]["seed"]),
        )
    )
    return rows


def _usage_records(keys: Mapping, label: str, usage: Mapping) -> list[dict]:
    """The CSV records of one table row: one per side and expert."""
    return [
        {
            **{key: keys[key] for key in _KEYS},
            "label": label,
            "side": side,
            "employed": side_usage["employed"],
            "activated": side_usage["activated"],
            "texts": side_usage["texts"],
            "expert": expert,
            "count": count,
            "share": share,
        }
        for side, side_usage in usage.items()
        for expert, (count, share) in enumerate(zip(side_usage["counts"], side_usage["shares"]))
    ]
