"""Runs as plain dicts, ``run[qid][doc_id] = score``, read from and written to TREC run files
(``qid Q0 doc_id rank score tag``).

A run file is written so that trec_eval, reading it, ranks every query as the study does:

- each score is written as the shortest decimal that reads back as the same double
  (:func:`format_score`), so distinct scores stay distinct and equal scores stay equal. The
  retrievers' scores are float32 (dense search) or double (fusion, routing); a float32 is exactly
  a double, so one format keeps both without knowing which a writer holds.
- documents are ranked by :func:`trec_order`, trec_eval's own order: score descending, compared
  in single precision as trec_eval stores them, equal scores by document id descending.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sbmoe.io.atomic import write_text
from sbmoe.io.collection import Qrels
from sbmoe.io.errors import DataFormatError, finite_number, text_lines, warn_input

Run = dict[str, dict[str, float]]


def trec_order(ranking: Mapping[str, float]) -> list[tuple[str, float]]:
    """One query's ``(doc_id, score)`` pairs in trec_eval's order: score descending, equal scores by
    document id descending. trec_eval keeps a score as a C ``float`` (``TEXT_TR.sim``), so scores
    are compared in single precision: doubles that round to the same float32 tie. It sorts ties by
    ``strcmp`` of the document ids, greater first; Python compares strings by code point, the order
    of their UTF-8 bytes."""
    docs = list(ranking)
    scores = np.fromiter(ranking.values(), dtype=np.float64, count=len(docs))
    with np.errstate(over="ignore"):  # beyond float32's range a score is infinite for trec_eval too
        single = scores.astype(np.float32)
    ascending = np.lexsort((np.array(docs, dtype=str), single))  # by score, then by id
    return [(docs[i], ranking[docs[i]]) for i in ascending[::-1].tolist()]


def rank_scores(ranking: Mapping[str, float]) -> dict[str, float]:
    """One query's ranking made explicit: its documents in :func:`trec_order`, scored ``n, n-1, ...,
    1``, for a library that would break ties its own way (ranx)."""
    order = trec_order(ranking)
    return {doc: float(len(order) - rank) for rank, (doc, _) in enumerate(order)}


def format_score(score: float) -> str:
    """``score`` as the shortest decimal that reads back as the same double (``repr``): 17
    significant digits at most, where ``%.6f`` would merge scores that differ below 1e-6."""
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"a run score must be a finite number, got {score!r}")
    return repr(value)


def write_trec_run(path: str | os.PathLike, run: Run, tag: str) -> None:
    """Write a run in TREC format, each query's documents in :func:`trec_order` with their scores
    at full precision (:func:`format_score`), atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"a run tag is one word (TREC run fields are whitespace-separated), got {tag!r}")
    lines = []
    for qid in run:
        ranked = trec_order(run[qid])
        lines.extend(
            f"{qid} Q0 {doc} {rank} {format_score(score)} {tag}" for rank, (doc, score) in enumerate(ranked, start=1)
        )
    write_text(path, "\n".join(lines) + "\n")


def read_trec_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file: ``qid Q0 doc_id rank score tag`` per line, whitespace-separated, an
    integer rank and a finite score, each document at most once per query. Any other line, or a
    file with no line, is an error naming the file and line."""
    path = Path(path)
    run: Run = {}
    for number, line in text_lines(path, "run", "qid Q0 doc rank score tag"):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise DataFormatError(path, number, f"expected 6 fields (qid Q0 doc rank score tag), found {len(fields)}")
        qid, _, doc, rank, score, _ = fields
        try:
            int(rank)
        except ValueError:
            raise DataFormatError(
                path, number, f"rank {rank!r} is not an integer (fields: qid Q0 doc rank score tag)"
            ) from None
        value = finite_number(path, number, score, "score", "fields: qid Q0 doc rank score tag")
        ranked = run.setdefault(qid, {})
        if doc in ranked:
            raise DataFormatError(path, number, f"document {doc!r} is ranked twice for query {qid!r}")
        ranked[doc] = value
    if not run:
        raise DataFormatError(path, None, "no results (expected lines 'qid Q0 doc rank score tag')")
    return run


def check_run_against_qrels(run: Run, qrels: Qrels, run_path: str | os.PathLike, qrels_path: str | os.PathLike) -> None:
    """A run that answers none of the judged queries is an error (it would score zero everywhere:
    a run of another test set); one that misses some of them is a warning (they score zero)."""
    judged = [qid for qid, docs in qrels.items() if any(grade > 0 for grade in docs.values())]
    missing = [qid for qid in judged if qid not in run]
    if judged and len(missing) == len(judged):
        raise DataFormatError(
            run_path,
            None,
            f"answers none of the {len(judged)} judged queries of {qrels_path} "
            f"(e.g. {judged[0]!r}); is it a run of another test set?",
        )
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warn_input(
            run_path,
            f"{len(missing)} of the {len(judged)} judged queries of {qrels_path} have no results "
            f"({shown}); they score zero",
        )
