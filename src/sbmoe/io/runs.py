"""Runs as plain dicts, ``run[qid][doc_id] = score``, read from and written to TREC run files
(``qid Q0 doc_id rank score tag``)."""

from __future__ import annotations

import os
from pathlib import Path

from sbmoe.io.atomic import write_text
from sbmoe.io.collection import Qrels
from sbmoe.io.errors import DataFormatError, finite_number, text_lines, warn_input

Run = dict[str, dict[str, float]]


def write_trec_run(path: str | os.PathLike, run: Run, tag: str) -> None:
    """Write a run in TREC format, documents ranked by score (ties by document id), atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"a run tag is one word (TREC run fields are whitespace-separated), got {tag!r}")
    lines = []
    for qid in run:
        ranked = sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))
        lines.extend(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}" for rank, (doc, score) in enumerate(ranked, start=1))
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
            raise DataFormatError(path, number, f"rank {rank!r} is not an integer (fields: qid Q0 doc rank score tag)") from None
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
        raise DataFormatError(run_path, None, f"answers none of the {len(judged)} judged queries of {qrels_path} "
                                              f"(e.g. {judged[0]!r}); is it a run of another test set?")
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warn_input(run_path, f"{len(missing)} of the {len(judged)} judged queries of {qrels_path} have no results "
                             f"({shown}); they score zero")
