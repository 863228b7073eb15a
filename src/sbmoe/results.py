"""Evaluation results as a tidy table: one row per evaluation JSON.

An evaluation is identified by its keys (:data:`KEYS`): encoder, training set, system id, seed,
test set and pooling. System ids follow the pipeline's vocabulary:

- ``zeroshot``: the encoder without training; ``finetune``: FT, the encoder trained without MoE;
- ``adapter-<combination>``: one expert and no gate;
- ``sbmoe-<combination>-e<E>``: SB-MoE with E experts;
- ``random-gate-e<E>``: SB-MoE whose gate is replaced by a random one (the RANDOM-GATE ablation).

The combination is ``paper`` (the authors' formula, in which the gate gets no gradient) or
``learned`` (ours, in which the gate learns). Pooling is ``top1`` or ``all`` for SB-MoE,
``top1`` for RANDOM-GATE and ``none`` for systems without a gate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .significance import seed_statistics

KEYS = ("encoder", "trainset", "system", "seed", "testset", "pooling")
GROUP_KEYS = ("encoder", "trainset", "system", "pooling", "testset")
METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "precision@1", "ndcg@3")
METRIC_LABELS = {
    "ndcg@10": "nDCG@10",
    "recall@100": "R@100",
    "mrr@10": "MRR@10",
    "map@100": "MAP@100",
    "precision@1": "P@1",
    "ndcg@3": "nDCG@3",
}
VARIANTS = ("zeroshot", "finetune", "adapter", "random-gate", "sbmoe")
COMBINATIONS = ("paper", "learned")
POOLINGS = ("none", "top1", "all")

_SYSTEM = re.compile(
    r"^(?:(?P<plain>zeroshot|finetune)"
    r"|adapter-(?P<adapter>paper|learned)"
    r"|sbmoe-(?P<sbmoe>paper|learned)-e(?P<experts>[1-9][0-9]*)"
    r"|random-gate-e(?P<random>[1-9][0-9]*))$"
)
_BASE_LABELS = {"zeroshot": "Zero-shot", "finetune": "FT", "adapter": "Adapter", "random-gate": "RANDOM-GATE"}
_POOLING_LABELS = {"top1": "TOP-1", "all": "ALL"}


def parse_system(system: str) -> dict:
    """Split a system id into ``variant``, ``combination`` (or None) and ``experts`` (or None)."""
    match = _SYSTEM.match(system)
    if match is None:
        raise ValueError(f"unknown system id {system!r}")
    if match["plain"]:
        return {"variant": match["plain"], "combination": None, "experts": None}
    if match["adapter"]:
        return {"variant": "adapter", "combination": match["adapter"], "experts": 1}
    if match["sbmoe"]:
        return {"variant": "sbmoe", "combination": match["sbmoe"], "experts": int(match["experts"])}
    return {"variant": "random-gate", "combination": None, "experts": int(match["random"])}


def display_label(system: str, pooling: str = "none", experts: bool = True) -> str:
    """The label a table or figure shows, e.g. ``SB-MoE TOP-1 E=6 (learned gate)``.

    ``experts=False`` leaves out the ``E=<experts>`` part.
    """
    parsed = parse_system(system)
    variant = parsed["variant"]
    if variant == "sbmoe":
        if pooling not in _POOLING_LABELS:
            raise ValueError(f"SB-MoE system {system!r} needs pooling top1 or all, got {pooling!r}")
        label = f"SB-MoE {_POOLING_LABELS[pooling]}"
    else:
        label = _BASE_LABELS[variant]
    if experts and variant in ("sbmoe", "random-gate"):
        label += f" E={parsed['experts']}"
    if parsed["combination"] == "learned":
        label += " (learned gate)"
    return label


def system_order(system: str, pooling: str = "none") -> tuple:
    """Sort key for rows: Zero-shot, FT, then the authors' combination before ours; within each,
    Adapter, RANDOM-GATE, SB-MoE; then by number of experts, then TOP-1 before ALL."""
    parsed = parse_system(system)
    combination = 1 if parsed["combination"] == "learned" else 0
    return (
        combination,
        VARIANTS.index(parsed["variant"]),
        parsed["experts"] or 0,
        POOLINGS.index(pooling) if pooling in POOLINGS else len(POOLINGS),
    )


def read_evaluation(path: str | Path) -> dict:
    """Read one evaluation JSON (``metrics``, ``per_query``, ``relevance_threshold``, ``num_queries``)."""
    with open(path, encoding="utf-8") as handle:
        evaluation = json.load(handle)
    missing = {"metrics", "per_query"} - set(evaluation)
    if missing:
        raise ValueError(f"{path}: evaluation JSON lacks {sorted(missing)}")
    return evaluation


def load_results(records: Iterable[tuple[Mapping, str | Path]]) -> pd.DataFrame:
    """Gather evaluation JSONs into one DataFrame.

    ``records`` are ``(keys, path)`` pairs, ``keys`` a dict with every name in :data:`KEYS`.
    Columns: the keys, ``variant``, ``combination``, ``experts``, ``label``, one column per metric
    found, ``relevance_threshold``, ``num_queries``, ``path`` and ``per_query`` (the evaluation's
    ``{metric: {qid: score}}`` dict).
    """
    rows = []
    for keys, path in records:
        missing = [key for key in KEYS if key not in keys]
        if missing:
            raise ValueError(f"{path}: keys lack {missing}")
        evaluation = read_evaluation(path)
        row = {key: keys[key] for key in KEYS}
        row.update(parse_system(row["system"]))
        row["label"] = display_label(row["system"], row["pooling"])
        row.update({metric: float(value) for metric, value in evaluation["metrics"].items()})
        row["relevance_threshold"] = evaluation.get("relevance_threshold")
        row["num_queries"] = evaluation.get("num_queries")
        row["path"] = str(path)
        row["per_query"] = evaluation["per_query"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*KEYS, "variant", "combination", "experts", "label", "path", "per_query"])
    duplicated = frame.duplicated(subset=list(KEYS), keep=False)
    if duplicated.any():
        raise ValueError(f"several evaluations share the same keys: {frame.loc[duplicated, 'path'].tolist()}")
    return frame


def aggregate_seeds(results: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each metric, per :data:`GROUP_KEYS`.

    Columns: the group keys, ``variant``, ``combination``, ``experts``, ``label``, ``seeds`` and for
    each metric ``<metric>`` (mean) and ``<metric>_std`` (0 with one seed).
    """
    descriptors = ["variant", "combination", "experts", "label"]
    rows = []
    for group, frame in results.groupby(list(GROUP_KEYS), sort=False, dropna=False):
        row = dict(zip(GROUP_KEYS, group))
        row.update({name: frame[name].iloc[0] for name in descriptors})
        row["seeds"] = len(frame)
        for metric in metrics:
            values = frame[metric].dropna() if metric in frame else []
            summary = seed_statistics(values) if len(values) else {"mean": math.nan, "std": math.nan}
            row[metric], row[f"{metric}_std"] = summary["mean"], summary["std"]
        rows.append(row)
    columns = [*GROUP_KEYS, *descriptors, "seeds", *(f"{m}{s}" for m in metrics for s in ("", "_std"))]
    return pd.DataFrame(rows, columns=columns)
