"""Runs as plain dicts, ``run[qid][doc_id] = score``, read from and written to TREC run files
(``qid Q0 doc_id rank score tag``)."""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import write_text
from .collection import DataFormatError

Run = dict[str, dict[str, float]]


def write_trec_run(path: str | os.PathLike, run: Run, tag: str) -> None:
    """Write a run in TREC format, documents ranked by score (ties by document id), atomically."""
    lines = []
    for qid in run:
        ranked = sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))
        lines.extend(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}" for rank, (doc, score) in enumerate(ranked, start=1))
    write_text(path, "\n".join(lines) + "\n")


def read_trec_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file; a line without six fields is an error naming the file and line."""
    path = Path(path)
    run: Run = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise DataFormatError(path, number, f"expected 6 fields (qid Q0 doc rank score tag), found {len(fields)}")
            try:
                score = float(fields[4])
            except ValueError:
                raise DataFormatError(path, number, f"score {fields[4]!r} is not a number") from None
            run.setdefault(fields[0], {})[fields[2]] = score
    return run
