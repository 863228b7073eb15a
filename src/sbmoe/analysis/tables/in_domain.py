"""Table I, in-domain: encoder x system rows, dataset x metric columns, best of a column within an encoder in bold."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from sbmoe.analysis.latex import MISSING, Table, best_flags, latex_escape, row, score_cell, spanning_header, tabular
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


def in_domain_table(
    results: pd.DataFrame,
    datasets: Sequence[tuple[str, str]],
    significance: Mapping | None = None,
    *,
    metrics: Sequence[str],
    systems: Sequence[str] | None = None,
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Table I: rows encoder x system, columns dataset x metric (mean over seeds).

    ``datasets`` lists the ``(trainset, testset)`` pairs shown, in column order; ``systems``
    restricts the system ids shown (all present by default); the untrained encoder (``zeroshot``)
    is shown under every training set. Bold: best of a column within an encoder. Dagger:
    significant difference from the baseline of the significance report.
    """
    pairs = [tuple(pair) for pair in datasets]
    chosen = place_untrained(select_systems(results, systems), list(dict.fromkeys(t for t, _ in pairs)))
    chosen = chosen[[pair in pairs for pair in zip(chosen["trainset"], chosen["testset"])]]
    cells = summaries(chosen, metrics)
    lookup = significant_cells(significance)
    records, blocks = [], []
    for encoder in dict.fromkeys(chosen["encoder"]):
        rows = ordered_systems(chosen[chosen["encoder"] == encoder])
        texts = _encoder_cells(encoder, rows, pairs, metrics, cells, lookup, records, dataset_labels, digits)
        encoder_text = latex_escape(label_of(encoder, encoder_labels))
        blocks.append(
            [
                row([encoder_text if index == 0 else "", latex_escape(display_label(*system)), *text])
                for index, (system, text) in enumerate(zip(rows, texts))
            ]
        )
    width = len(metrics)
    header = [
        *spanning_header(["", ""], [(latex_escape(label_of(t, dataset_labels)), width) for _, t in pairs]),
        row(["Encoder", "System"] + [metric_header(m) for _ in pairs for m in metrics]),
    ]
    latex = tabular("ll" + "c" * (width * len(pairs)), header, blocks)
    return Table(latex, pd.DataFrame(records))


def _encoder_cells(encoder, rows, pairs, metrics, cells, lookup, records, dataset_labels, digits) -> list[list[str]]:
    """The cell texts of one encoder's rows (one list per system), column after column; the shown
    cells' records are appended to ``records``."""
    texts = [[] for _ in rows]
    for trainset, testset in pairs:
        for metric in metrics:
            found = [cells.get((encoder, system, pooling, trainset, testset)) for system, pooling in rows]
            means = [cell[metric] if cell else math.nan for cell in found]
            for text, cell, best in zip(texts, found, best_flags(means, digits)):
                if cell is None:
                    text.append(MISSING)
                    continue
                key = (encoder, trainset, testset, metric, cell["system"], cell["pooling"])
                record = cell_record(cell, metric, best, lookup.get(key, {}), dataset_labels)
                records.append(record)
                text.append(
                    score_cell(record["mean"], record["std"], record["seeds"], best, record["significant"], digits)
                )
    return texts
