"""The score cells the evaluation tables share: seed-aggregated means, their significance and their CSV records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from sbmoe.analysis.latex import latex_escape
from sbmoe.evaluation.results import aggregate_seeds
from sbmoe.systems.labels import metric_label, system_order


def label_of(name: str, labels: Mapping[str, str] | None) -> str:
    """The display label of a dataset or encoder id (the id itself when none is given)."""
    return (labels or {}).get(name, name)


def metric_header(metric: str) -> str:
    """A metric's label as a column header."""
    return latex_escape(metric_label(metric))


def significant_cells(report: Mapping | None) -> dict[tuple, dict]:
    """Index a significance report (:func:`sbmoe.evaluation.significance.significance_report`) by
    (encoder, trainset, testset, metric, system, pooling): a cell gets a dagger when its system differs
    significantly from the baseline after correction."""
    if not report:
        return {}
    return {
        (c["encoder"], c["trainset"], c["testset"], c["metric"], c["system"], c["pooling"]): c
        for c in report["comparisons"]
    }


def ordered_systems(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The (system, pooling) pairs of ``frame`` in the tables' row order."""
    pairs = dict.fromkeys(zip(frame["system"], frame["pooling"]))
    return sorted(pairs, key=lambda pair: system_order(*pair))


def select_systems(results: pd.DataFrame, systems: Sequence[str] | None) -> pd.DataFrame:
    """The results of the given system ids (all of them when ``systems`` is None)."""
    return results if systems is None else results[results["system"].isin(list(systems))]


def summaries(results: pd.DataFrame, metrics: Sequence[str]) -> dict[tuple, dict]:
    """Seed-aggregated cells keyed by (encoder, system, pooling, trainset, testset)."""
    summary = aggregate_seeds(results, metrics)
    return {
        (row["encoder"], row["system"], row["pooling"], row["trainset"], row["testset"]): row
        for row in summary.to_dict("records")
    }


def cell_record(cell: Mapping, metric: str, best: bool, test: Mapping, dataset_labels) -> dict:
    """The CSV record of one shown cell: its keys, mean, std, seeds, bold flag and significance."""
    return {
        "encoder": cell["encoder"],
        "system": cell["system"],
        "pooling": cell["pooling"],
        "label": cell["label"],
        "trainset": cell["trainset"],
        "testset": cell["testset"],
        "dataset": label_of(cell["testset"], dataset_labels),
        "metric": metric,
        "mean": cell[metric],
        "std": cell[f"{metric}_std"],
        "seeds": cell["seeds"],
        "best": best,
        "p_value": test.get("p_value"),
        "p_corrected": test.get("p_corrected"),
        "significant": bool(test.get("significant")),
    }
