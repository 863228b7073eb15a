"""The routing table: each expert retriever, their fusions, the router (hard and soft) and the oracle, per test set."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from sbmoe.analysis.latex import (
    MISSING,
    Table,
    best_flags,
    format_score,
    latex_escape,
    row,
    score_cell,
    spanning_header,
    stacked,
    tabular,
)
from sbmoe.analysis.tables.cells import label_of, metric_header
from sbmoe.io.errors import DataFormatError, read_yaml
from sbmoe.selection.comparison import best_single
from sbmoe.systems.labels import system_label

_ROUTING_BLOCKS = (("fusion", ("rrf", "wsum")), ("router", ("router-hard", "router-soft")), ("oracle", ("oracle",)))
BM25_REFERENCE_METRIC = "ndcg@10"  # the one metric BEIR publishes for BM25 on every dataset


def load_bm25_reference(path: str | Path) -> dict[str, float]:
    """BEIR's published BM25 nDCG@10 per dataset (``workflow/bm25_reference.yaml``)."""
    reference = read_yaml(path, "BEIR's published BM25 nDCG@10 per dataset")
    values = reference.get(BM25_REFERENCE_METRIC) if isinstance(reference, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise DataFormatError(path, None, "expected 'ndcg@10' mapping dataset names to published nDCG@10 values")
    return {str(name): float(value) for name, value in values.items()}


def routing_table(
    evaluations: Mapping[str, Mapping[str, Mapping[str, Mapping]]],
    experts: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    significance: Mapping | None = None,
    bm25_reference: Mapping[str, float] | None = None,
    *,
    metrics: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Routing over whole retrievers: each expert, the fusions (RRF, WSUM), the router (hard and
    soft) and the oracle, per ``(trainset, testset)`` pair (the router of ``trainset`` on ``testset``).

    ``evaluations`` is ``{trainset: {testset: {system: evaluation}}}`` (the routing stage's JSON).
    Bold: best of a column apart from the oracle. Underline: the best single expert (by nDCG@10),
    the baseline of the significance tests; dagger: different from it after correction (the report
    of :func:`sbmoe.selection.comparison.significance_against_best_single`). A last row gives BEIR's
    published BM25 nDCG@10 where ``bm25_reference`` has the test set.
    """
    pairs = [tuple(pair) for pair in pairs]
    tests = {
        (c["trainset"], c["testset"], c["metric"], c["system"]): c for c in (significance or {}).get("comparisons", [])
    }
    blocks_of = [("expert", tuple(experts)), *_ROUTING_BLOCKS]
    rows = [(kind, name) for kind, names in blocks_of for name in names]
    texts = {key: [] for key in rows}
    records, published = [], []
    for trainset, testset in pairs:
        systems = evaluations[trainset][testset]
        baseline = best_single(systems, list(experts))
        for metric in metrics:
            column = _column(trainset, testset, metric, systems, rows, baseline, tests, dataset_labels, digits)
            for key, text in zip(rows, column["texts"]):
                texts[key].append(text)
            records += column["records"]
            value = (bm25_reference or {}).get(testset, math.nan) if metric == BM25_REFERENCE_METRIC else math.nan
            published.append(rf"\textit{{{format_score(value, digits)}}}" if not math.isnan(value) else MISSING)
            if not math.isnan(value):
                records.append(
                    {
                        "trainset": trainset,
                        "testset": testset,
                        "dataset": label_of(testset, dataset_labels),
                        "system": "bm25-beir",
                        "label": "BM25 (BEIR, published)",
                        "kind": "published",
                        "metric": metric,
                        "mean": value,
                    }
                )
    blocks = [
        [row([latex_escape(system_label(name)), *texts[(kind, name)]]) for name in names] for kind, names in blocks_of
    ]
    if bm25_reference and any(t in bm25_reference for _, t in pairs):
        blocks.append([row([r"\textit{BM25 (BEIR, published)}", *published])])
    width = len(metrics)
    trainsets = {t for t, _ in pairs}
    header = [
        *spanning_header([""], [(_column_label(*pair, trainsets, dataset_labels), width) for pair in pairs]),
        row(["System"] + [metric_header(m) for _ in pairs for m in metrics]),
    ]
    latex = tabular("l" + "c" * (width * len(pairs)), header, blocks)
    return Table(latex, pd.DataFrame(records))


def _column(trainset, testset, metric, systems, rows, baseline, tests, dataset_labels, digits) -> dict:
    """One column of the table (a test set and metric): the text of every row and the records of the
    systems evaluated."""
    means = [systems[name]["metrics"].get(metric, math.nan) if name in systems else math.nan for _, name in rows]
    contenders = [m if kind != "oracle" else math.nan for (kind, _), m in zip(rows, means)]
    texts, records = [], []
    for (kind, name), mean, best in zip(rows, means, best_flags(contenders, digits)):
        outcome = tests.get((trainset, testset, metric, name), {})
        text = score_cell(mean, math.nan, 1, best, bool(outcome.get("significant")), digits)
        if name == baseline and not math.isnan(mean):
            text = rf"\underline{{{text}}}"
        texts.append(text)
        if math.isnan(mean):
            continue
        records.append(
            {
                "trainset": trainset,
                "testset": testset,
                "dataset": label_of(testset, dataset_labels),
                "system": name,
                "label": system_label(name),
                "kind": kind,
                "metric": metric,
                "mean": mean,
                "best": best,
                "baseline": baseline,
                "is_baseline": name == baseline,
                "p_value": outcome.get("p_value"),
                "p_corrected": outcome.get("p_corrected"),
                "significant": bool(outcome.get("significant")),
                "num_queries": systems[name].get("num_queries"),
            }
        )
    return {"texts": texts, "records": records}


def _column_label(trainset: str, testset: str, trainsets: set, dataset_labels) -> str:
    """A test set's header, naming the router's training set when it differs or there are several."""
    label = latex_escape(label_of(testset, dataset_labels))
    if testset != trainset or len(trainsets) > 1:
        label = stacked(f"{label_of(testset, dataset_labels)} (router: {label_of(trainset, dataset_labels)})")
    return label
