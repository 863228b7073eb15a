"""Counts of a dataset in BEIR layout, and the table of them the paper shows.

:func:`dataset_statistics` counts a folder's documents, queries and, per split, judged queries and
judgements, with mean lengths in whitespace tokens; :func:`statistics_table` typesets them as a
booktabs ``tabular`` and :func:`write_statistics_csv` writes the same numbers as CSV.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping

from sbmoe.data.table import SPLIT_ORDER
from sbmoe.io.atomic import write_text
from sbmoe.io.collection import document_text, load_corpus, load_qrels, load_queries


def _ordered_splits(splits: Iterable[str]) -> list[str]:
    rank = {split: i for i, split in enumerate(SPLIT_ORDER)}
    return sorted(set(splits), key=lambda split: (rank.get(split, len(rank)), split))


def _mean(values: Iterable[int]) -> float:
    total = count = 0
    for value in values:
        total += value
        count += 1
    return total / count if count else 0.0


def dataset_statistics(folder: str | os.PathLike) -> dict:
    """Counts of a BEIR folder: documents, queries, per split judged queries and qrels, and mean
    document (title + text) and query lengths in whitespace tokens."""
    folder = Path(folder)
    corpus = load_corpus(folder / "corpus.jsonl")
    queries = load_queries(folder / "queries.jsonl")
    splits = {}
    for split in _ordered_splits(path.stem for path in (folder / "qrels").glob("*.tsv")):
        qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
        splits[split] = {"judged_queries": len(qrels), "qrels": sum(map(len, qrels.values()))}
    return {
        "documents": len(corpus),
        "queries": len(queries),
        "mean_document_length": _mean(len(document_text(doc).split()) for doc in corpus.values()),
        "mean_query_length": _mean(len(text.split()) for text in queries.values()),
        "splits": splits,
    }


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def _latex_int(value: int | None) -> str:
    return "--" if value is None else f"{value:,}".replace(",", "{,}")


def statistics_table(stats: Mapping[str, dict]) -> str:
    """A booktabs ``tabular`` (no float wrapper, for ``\\input`` inside a table) of
    :func:`dataset_statistics` results keyed by dataset name."""
    splits = _ordered_splits(split for entry in stats.values() for split in entry["splits"])
    groups = [*(split.capitalize() for split in splits), "Mean length"]
    lines = [
        rf"\begin{{tabular}}{{l{'r' * (1 + 2 * len(groups))}}}",
        r"\toprule",
        " & ".join(["", "", *(rf"\multicolumn{{2}}{{c}}{{{latex_escape(group)}}}" for group in groups)]) + r" \\",
        "".join(rf"\cmidrule(lr){{{3 + 2 * i}-{4 + 2 * i}}}" for i in range(len(groups))),
        " & ".join(["Dataset", "Documents", *(["Queries", "Qrels"] * len(splits)), "Document", "Query"]) + r" \\",
        r"\midrule",
    ]
    for name, entry in stats.items():
        cells = [latex_escape(name), _latex_int(entry["documents"])]
        for split in splits:
            counts = entry["splits"].get(split, {})
            cells += [_latex_int(counts.get("judged_queries")), _latex_int(counts.get("qrels"))]
        cells += [f"{entry['mean_document_length']:.1f}", f"{entry['mean_query_length']:.1f}"]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_statistics_csv(path: str | os.PathLike, stats: Mapping[str, dict]) -> None:
    """The numbers of :func:`statistics_table` as CSV, one row per dataset (written atomically)."""
    splits = _ordered_splits(split for entry in stats.values() for split in entry["splits"])
    header = ["dataset", "documents", "queries", "mean_document_length", "mean_query_length"]
    header += [f"{split}_{field}" for split in splits for field in ("judged_queries", "qrels")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for name, entry in stats.items():
        row = [name, entry["documents"], entry["queries"]]
        row += [f"{entry['mean_document_length']:.4f}", f"{entry['mean_query_length']:.4f}"]
        for split in splits:
            counts = entry["splits"].get(split, {})
            row += [counts.get("judged_queries", ""), counts.get("qrels", "")]
        writer.writerow(row)
    write_text(path, buffer.getvalue())
