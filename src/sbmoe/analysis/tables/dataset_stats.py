"""The table of dataset statistics (documents, judged queries and qrels per split, mean lengths), as LaTeX and CSV."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping

from sbmoe.analysis.latex import MISSING, latex_escape, row, spanning_header, tabular
from sbmoe.data.statistics import ordered_splits
from sbmoe.io.atomic import write_text


def _latex_int(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}".replace(",", "{,}")


def _splits(stats: Mapping[str, dict]) -> list[str]:
    return ordered_splits(split for entry in stats.values() for split in entry["splits"])


def statistics_table(stats: Mapping[str, dict]) -> str:
    """A booktabs ``tabular`` (no float wrapper, for ``\\input`` inside a table) of
    :func:`sbmoe.data.datasets.dataset_statistics` results keyed by dataset name."""
    splits = _splits(stats)
    groups = [*(split.capitalize() for split in splits), "Mean length"]
    header = [
        *spanning_header(["", ""], [(latex_escape(group), 2) for group in groups]),
        row(["Dataset", "Documents", *(["Queries", "Qrels"] * len(splits)), "Document", "Query"]),
    ]
    body = []
    for name, entry in stats.items():
        cells = [latex_escape(name), _latex_int(entry["documents"])]
        for split in splits:
            counts = entry["splits"].get(split, {})
            cells += [_latex_int(counts.get("judged_queries")), _latex_int(counts.get("qrels"))]
        cells += [f"{entry['mean_document_length']:.1f}", f"{entry['mean_query_length']:.1f}"]
        body.append(row(cells))
    return tabular(f"l{'r' * (1 + 2 * len(groups))}", header, [body])


def write_statistics_csv(path: str | os.PathLike, stats: Mapping[str, dict]) -> None:
    """The numbers of :func:`statistics_table` as CSV, one row per dataset (written atomically)."""
    splits = _splits(stats)
    header = ["dataset", "documents", "queries", "mean_document_length", "mean_query_length"]
    header += [f"{split}_{field}" for split in splits for field in ("judged_queries", "qrels")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for name, entry in stats.items():
        values = [name, entry["documents"], entry["queries"]]
        values += [f"{entry['mean_document_length']:.4f}", f"{entry['mean_query_length']:.4f}"]
        for split in splits:
            counts = entry["splits"].get(split, {})
            values += [counts.get("judged_queries", ""), counts.get("qrels", "")]
        writer.writerow(values)
    write_text(path, buffer.getvalue())
