"""Table II, zero-shot: datasets as rows, encoder x system (x metric) columns, an Average row, best of a row in bold."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sbmoe.analysis.latex import (
    MISSING,
    Table,
    best_flags,
    latex_escape,
    row,
    score_cell,
    spanning_header,
    stacked,
    tabular,
)
from sbmoe.analysis.tables.cells import (
    cell_record,
    label_of,
    metric_header,
    ordered_systems,
    select_systems,
    significant_cells,
    summaries,
)
from sbmoe.evaluation.results import place_untrained
from sbmoe.systems.labels import display_label


def zero_shot_table(
    results: pd.DataFrame,
    trainset: str,
    testsets: Sequence[str],
    significance: Mapping | None = None,
    *,
    metrics: Sequence[str],
    systems: Sequence[str] | None = None,
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Table II: datasets as rows (models trained on ``trainset``), encoder x system (x metric)
    columns, and an Average row (the mean over datasets, ``--`` for a column missing a dataset).

    Bold: best of a row within an encoder and metric. Dagger: significant difference from the
    baseline of the significance report.
    """
    chosen = place_untrained(select_systems(results, systems), [trainset])
    chosen = chosen[(chosen["trainset"] == trainset) & chosen["testset"].isin(list(testsets))]
    cells = summaries(chosen, metrics)
    lookup = significant_cells(significance)
    columns = [
        (encoder, system, pooling)
        for encoder in dict.fromkeys(chosen["encoder"])
        for system, pooling in ordered_systems(chosen[chosen["encoder"] == encoder])
    ]
    groups = {}  # (encoder, metric) -> column positions compared for bold
    for position, ((encoder, _, _), metric) in enumerate((c, m) for c in columns for m in metrics):
        groups.setdefault((encoder, metric), []).append(position)

    def bold_flags(means: list[float]) -> list[bool]:
        flags = [False] * len(means)
        for positions in groups.values():
            for position, best in zip(positions, best_flags([means[p] for p in positions], digits)):
                flags[position] = best
        return flags

    records, body, averages = [], [], {}
    for testset in testsets:
        found = [cells.get((e, s, p, trainset, testset)) for e, s, p in columns for _ in metrics]
        cycle = list(metrics) * len(columns)
        means = [cell[metric] if cell else math.nan for cell, metric in zip(found, cycle)]
        texts = _dataset_cells(trainset, testset, found, cycle, bold_flags(means), lookup, records, dataset_labels, digits)
        body.append(row([latex_escape(label_of(testset, dataset_labels)), *texts]))
        for position, mean in enumerate(means):
            averages.setdefault(position, []).append(mean)
    average_means = [float(np.mean(averages[p])) if averages else math.nan for p in range(len(columns) * len(metrics))]
    average_row = _average_row(columns, metrics, trainset, average_means, bold_flags(average_means), records, digits)
    header = _header(columns, metrics, encoder_labels)
    latex = tabular("l" + "c" * (len(metrics) * len(columns)), header, [body, [average_row]])
    return Table(latex, pd.DataFrame(records))


def _dataset_cells(trainset, testset, found, cycle, flags, lookup, records, dataset_labels, digits) -> list[str]:
    """The cell texts of one dataset's row; the shown cells' records are appended to ``records``."""
    texts = []
    for cell, metric, best in zip(found, cycle, flags):
        if cell is None:
            texts.append(MISSING)
            continue
        key = (cell["encoder"], trainset, testset, metric, cell["system"], cell["pooling"])
        record = cell_record(cell, metric, best, lookup.get(key, {}), dataset_labels)
        records.append(record)
        texts.append(score_cell(record["mean"], record["std"], record["seeds"], best, record["significant"], digits))
    return texts


def _average_row(columns, metrics, trainset, means, flags, records, digits) -> str:
    """The Average row (mean over datasets per column); its records are appended to ``records``."""
    texts = []
    for position, best in enumerate(flags):
        encoder, system, pooling = columns[position // len(metrics)]
        metric = metrics[position % len(metrics)]
        texts.append(score_cell(means[position], math.nan, 1, best, False, digits))
        records.append(
            {
                "encoder": encoder,
                "system": system,
                "pooling": pooling,
                "label": display_label(system, pooling),
                "trainset": trainset,
                "testset": "average",
                "dataset": "Average",
                "metric": metric,
                "mean": means[position],
                "best": best,
            }
        )
    return row(["Average", *texts])


def _header(columns, metrics, encoder_labels) -> list[str]:
    """Encoders spanning their systems, then a system per column (per metric group), then the
    metrics when there are several."""
    width = len(metrics)
    encoders = list(dict.fromkeys(encoder for encoder, _, _ in columns))
    spans = [sum(1 for c in columns if c[0] == encoder) * width for encoder in encoders]
    header = spanning_header([""], [(latex_escape(label_of(e, encoder_labels)), s) for e, s in zip(encoders, spans)])
    header.append(
        row(
            ["Dataset"]
            + [
                rf"\multicolumn{{{width}}}{{c}}{{{stacked(display_label(system, pooling))}}}"
                if width > 1
                else stacked(display_label(system, pooling))
                for _, system, pooling in columns
            ]
        )
    )
    if width > 1:
        header.append(row([""] + [metric_header(m) for _ in columns for m in metrics]))
    return header
