"""Table II, zero-shot: encoder x system rows, test set (x metric) columns and an Average column, best of a
system's test set within an encoder in bold; many test sets are split into several tabulars."""

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

# Test-set columns per tabular: more would not fit the page at the paper's table font size.
PANEL_WIDTH = 6


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
    """Table II: encoder x system rows (models trained on ``trainset``), test set (x metric) columns,
    and an Average column (the mean over test sets, ``--`` for a system missing a test set); more
    than :data:`PANEL_WIDTH` test sets are split into several tabulars, one under the other.

    Bold: best system of a test set within an encoder and metric. Dagger: significant difference from the
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

    records, texts, averages = [], {}, {}
    for testset in testsets:
        found = [cells.get((e, s, p, trainset, testset)) for e, s, p in columns for _ in metrics]
        cycle = list(metrics) * len(columns)
        means = [cell[metric] if cell else math.nan for cell, metric in zip(found, cycle)]
        texts[testset] = _dataset_cells(
            trainset, testset, found, cycle, bold_flags(means), lookup, records, dataset_labels, digits
        )
        for position, mean in enumerate(means):
            averages.setdefault(position, []).append(mean)
    average_means = [float(np.mean(averages[p])) if averages else math.nan for p in range(len(columns) * len(metrics))]
    texts["average"] = _average_row(
        columns, metrics, trainset, average_means, bold_flags(average_means), records, digits
    )
    headers = {testset: latex_escape(label_of(testset, dataset_labels)) for testset in testsets}
    headers["average"] = "Average"
    latex = "\\par\\medskip\n".join(
        _panel(columns, metrics, panel, headers, texts, encoder_labels) for panel in _panels([*testsets, "average"])
    )
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


def _average_row(columns, metrics, trainset, means, flags, records, digits) -> list[str]:
    """The Average cells (mean over datasets per system and metric); their records are appended to ``records``."""
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
    return texts


def _panels(testsets: Sequence[str]) -> list[list[str]]:
    """The test-set columns split into panels of at most :data:`PANEL_WIDTH`, so that each stays
    legible at the paper's table size (the Average column closes the last panel)."""
    count = math.ceil(len(testsets) / PANEL_WIDTH)
    size = math.ceil(len(testsets) / count)
    return [list(testsets[start : start + size]) for start in range(0, len(testsets), size)]


def _panel(columns, metrics, testsets, headers, texts, encoder_labels) -> str:
    """One tabular: a row per encoder and system, the given test sets (x metrics) as columns."""
    width = len(metrics)
    encoders = list(dict.fromkeys(encoder for encoder, _, _ in columns))
    leading = ["Encoder", "System"] if len(encoders) > 1 else ["System"]
    blocks = []
    for encoder in encoders:
        block = []
        for position, (column_encoder, system, pooling) in enumerate(columns):
            if column_encoder != encoder:
                continue
            cells = [texts[t][position * width + offset] for t in testsets for offset in range(width)]
            label = [latex_escape(display_label(system, pooling))]
            if len(encoders) > 1:
                label.insert(0, latex_escape(label_of(encoder, encoder_labels)) if not block else "")
            block.append(row([*label, *cells]))
        blocks.append(block)
    if width > 1:
        header = [
            *spanning_header([""] * len(leading), [(headers[t], width) for t in testsets]),
            row(leading + [metric_header(m) for _ in testsets for m in metrics]),
        ]
    else:
        header = [row(leading + [headers[t] for t in testsets])]
    return tabular("l" * len(leading) + "c" * (width * len(testsets)), header, blocks)
