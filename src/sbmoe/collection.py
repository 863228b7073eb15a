"""Test collections in BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Everything is read into plain structures, as BEIR and ranx use them::

    corpus[doc_id] = {"title": str, "text": str}
    queries[qid] = str
    qrels[qid][doc_id] = int

Malformed input raises :class:`DataFormatError`, which names the file and the line.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


class DataFormatError(ValueError):
    """A collection file that does not follow the BEIR layout."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def read_jsonl(path: str | Path, key: str = "_id", kind: str = "JSON lines"):
    """Yield ``(line number, object)`` for each non-empty line of ``path``; every line must be a JSON
    object with ``key``, else :class:`DataFormatError` names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, f"missing {kind} file (expected JSON lines)")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise DataFormatError(path, number, f"not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataFormatError(path, number, "expected a JSON object")
            if key not in record:
                raise DataFormatError(path, number, f"record has no {key!r}")
            yield number, record


def load_corpus(path: str | Path) -> Corpus:
    """Read ``corpus.jsonl``: one ``{"_id", "title", "text"}`` object per line."""
    path = Path(path)
    corpus: Corpus = {}
    for number, record in read_jsonl(path, kind="corpus"):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise DataFormatError(path, number, f"duplicate document id {doc_id!r}")
        text = record.get("text")
        if not isinstance(text, str):
            raise DataFormatError(path, number, "record has no string 'text'")
        corpus[doc_id] = {"title": str(record.get("title") or ""), "text": text}
    return corpus


def load_queries(path: str | Path) -> Queries:
    """Read ``queries.jsonl``: one ``{"_id", "text"}`` object per line."""
    path = Path(path)
    queries: Queries = {}
    for number, record in read_jsonl(path, kind="queries"):
        qid = str(record["_id"])
        if qid in queries:
            raise DataFormatError(path, number, f"duplicate query id {qid!r}")
        text = record.get("text")
        if not isinstance(text, str):
            raise DataFormatError(path, number, "record has no string 'text'")
        queries[qid] = text
    return queries


def load_qrels(path: str | Path, queries: Queries | None = None, corpus: Corpus | None = None) -> Qrels:
    """Read a ``qrels/<split>.tsv`` file: ``query-id<TAB>corpus-id<TAB>score``, an optional header.

    When ``queries`` (or ``corpus``) is given, a judgement naming an unknown query (or document)
    is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "missing qrels file (expected query-id, corpus-id, score)")
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if number == 1 and fields[0] == "query-id":
                continue
            if len(fields) != 3:
                raise DataFormatError(
                    path, number, f"expected 3 tab-separated columns (query-id, corpus-id, score), found {len(fields)}"
                )
            qid, doc_id, score = fields
            try:
                grade = int(float(score))
            except (ValueError, OverflowError):  # OverflowError: "inf"
                raise DataFormatError(path, number, f"score {score!r} is not a number") from None
            if queries is not None and qid not in queries:
                raise DataFormatError(path, number, f"query {qid!r} is not in the queries file")
            if corpus is not None and doc_id not in corpus:
                raise DataFormatError(path, number, f"document {doc_id!r} is not in the corpus")
            qrels.setdefault(qid, {})[doc_id] = grade
    return qrels


def write_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write qrels in BEIR's TSV layout (with header), atomically."""
    from .atomic import write_text

    lines = ["query-id\tcorpus-id\tscore"]
    for qid, docs in qrels.items():
        lines.extend(f"{qid}\t{doc_id}\t{grade}" for doc_id, grade in docs.items())
    write_text(path, "\n".join(lines) + "\n")


def document_text(document: dict[str, str]) -> str:
    """A document as the encoders see it: ``title + " " + text`` (no leading space without a title)."""
    title = document.get("title") or ""
    return f"{title} {document['text']}" if title else document["text"]


def split_validation(qrels: Qrels, fraction: float, seed: int) -> tuple[Qrels, Qrels]:
    """Hold out ``fraction`` of the judged queries (at least one), chosen by ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    qids = sorted(qrels)
    held = max(1, round(len(qids) * fraction))
    valid_ids = set(random.Random(seed).sample(qids, held))
    train = {q: qrels[q] for q in qids if q not in valid_ids}
    valid = {q: qrels[q] for q in qids if q in valid_ids}
    return train, valid


def corpus_path(folder: str | Path, split: str) -> Path:
    """The corpus a split searches: ``corpus.<split>.jsonl`` where a split has its own (BEIR's NQ
    training corpus differs from its test corpus), else ``corpus.jsonl``."""
    own = Path(folder) / f"corpus.{split}.jsonl"
    return own if own.is_file() else Path(folder) / "corpus.jsonl"


@dataclass
class Collection:
    """A BEIR-layout folder: its corpus, its queries and the qrels of one split."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels

    @classmethod
    def load(cls, folder: str | Path, split: str = "test") -> "Collection":
        folder = Path(folder)
        if not folder.is_dir():
            raise DataFormatError(folder, None, "collection folder does not exist")
        corpus = load_corpus(corpus_path(folder, split))
        queries = load_queries(folder / "queries.jsonl")
        qrels = load_qrels(folder / "qrels" / f"{split}.tsv", queries=queries)
        return cls(corpus=corpus, queries=queries, qrels=qrels)

    def judged_queries(self) -> Queries:
        """The queries that have at least one judgement in this split."""
        return {qid: self.queries[qid] for qid in self.qrels}
