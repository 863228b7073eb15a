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


def _shares_text(shares: Sequence[float]) -> str:
    return "/".join(f"{round(100 * share)}" for share in shares)


def experts_table(
    records: Iterable[tuple[Mapping, str | Path, str | Path | Sequence[str | Path]]],
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
) -> Table:
    """Table III: experts employed (E) vs experts activated, for queries and documents.

    ``records`` are ``(keys, queries_npz, corpus_npz)``, the corpus as one npz or a list of its
    shards; records of systems without a gate are left out. Activated = experts that received at
    least one text (the routing actually taken, the npz ``experts`` array). The share columns give
    the percentage of texts per expert. A seed column appears when the records hold several seeds.
    The CSV has one row per record, side (``queries`` / ``documents``) and expert.
    """
    rows = _usages(records)
    several_seeds = len({str(keys["seed"]) for keys, _ in rows}) > 1
    several_encoders = len({keys["encoder"] for keys, _ in rows}) > 1
    records_out, body = [], []
    for keys, usage in rows:
        label = display_label(keys["system"], keys["pooling"])
        cells = [latex_escape(label_of(keys["encoder"], encoder_labels))] if several_encoders else []
        cells += [latex_escape(label), latex_escape(label_of(keys["testset"], dataset_labels))]
        cells += [latex_escape(keys["seed"])] if several_seeds else []
        cells += [
            str(usage["queries"]["employed"]),
            str(usage["queries"]["activated"]),
            str(usage["documents"]["activated"]),
            _shares_text(usage["queries"]["shares"]),
            _shares_text(usage["documents"]["shares"]),
        ]
        body.append(row(cells))
        records_out += _usage_records(keys, label, usage)
    names = (["Encoder"] if several_encoders else []) + ["System", "Dataset"] + (["Seed"] if several_seeds else [])
    header = [
        *spanning_header([""] * (len(names) + 1), [("Activated", 2), (r"Share per expert (\%)", 2)]),
        row(names + ["E", "Queries", "Docs", "Queries", "Docs"]),
    ]
    latex = tabular("l" * len(names) + "ccc" + "ll", header, [body])
    return Table(latex, pd.DataFrame(records_out))


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
