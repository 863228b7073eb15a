"""Test collections in BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Everything is read into plain structures, as BEIR and ranx use them::

    corpus[doc_id] = {"title": str, "text": str}
    queries[qid] = str
    qrels[qid][doc_id] = int

Malformed input raises :class:`~sbmoe.io.errors.DataFormatError`, which names the file and the line.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from sbmoe.io.atomic import write_text
from sbmoe.io.errors import DataFormatError, finite_number, json_problem, text_lines, warn_input

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


def _record_id(path: Path, number: int, record: dict, key: str) -> str:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFormatError(path, number, f"{key!r} must be a string, got {value!r}")
    value = str(value)
    if not value or any(c.isspace() for c in value):
        raise DataFormatError(
            path,
            number,
            f"{key!r} {value!r} must be non-empty and without whitespace "
            "(run and qrels files separate fields by whitespace)",
        )
    return value


def read_jsonl(path: str | Path, key: str = "_id", kind: str = "JSON lines"):
    """Yield ``(line number, object)`` for each non-empty line of ``path``; every line must be a UTF-8
    JSON object with ``key``, else :class:`DataFormatError` names the file and line."""
    path = Path(path)
    for number, raw in text_lines(path, kind, "JSON lines"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, number, f"not valid JSON ({json_problem(error)})") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, number, f"expected a JSON object, got {type(record).__name__}")
        if key not in record:
            raise DataFormatError(path, number, f"record has no {key!r}")
        yield number, record


def _read_records(path: Path, kind: str, fields: str) -> dict[str, tuple[int, dict]]:
    """The records of a corpus or queries file by id, with their line numbers; ids are unique and the
    ``text`` (and ``title``, where present) are strings."""
    records: dict[str, tuple[int, dict]] = {}
    for number, record in read_jsonl(path, kind=kind):
        record_id = _record_id(path, number, record, "_id")
        if record_id in records:
            raise DataFormatError(path, number, f"duplicate id {record_id!r} (first on line {records[record_id][0]})")
        if not isinstance(record.get("text"), str):
            raise DataFormatError(path, number, f"record has no string 'text' (expected {fields})")
        if record.get("title") is not None and not isinstance(record["title"], str):
            raise DataFormatError(path, number, f"'title' must be a string, got {record['title']!r}")
        records[record_id] = (number, record)
    if not records:
        raise DataFormatError(path, None, f"no records (expected one {fields} object per line)")
    return records


def load_corpus(path: str | Path) -> Corpus:
    """Read ``corpus.jsonl``: one ``{"_id", "title", "text"}`` object per line."""
    records = _read_records(Path(path), "corpus", '{"_id", "title", "text"}')
    return {
        doc_id: {"title": record.get("title") or "", "text": record["text"]} for doc_id, (_, record) in records.items()
    }


def load_queries(path: str | Path) -> Queries:
    """Read ``queries.jsonl``: one ``{"_id", "text"}`` object per line."""
    records = _read_records(Path(path), "queries", '{"_id", "text"}')
    return {qid: record["text"] for qid, (_, record) in records.items()}


def _grade(path: Path, number: int, score: str) -> int:
    """A relevance grade: an integer (``2`` or ``2.0``)."""
    value = finite_number(path, number, score, "score", "expected an integer relevance grade")
    if not value.is_integer():
        raise DataFormatError(path, number, f"score {score!r} is not an integer relevance grade")
    return int(value)


def load_qrels(path: str | Path, queries: Queries | None = None, corpus: Corpus | None = None) -> Qrels:
    """Read a ``qrels/<split>.tsv`` file: ``query-id<TAB>corpus-id<TAB>score``, an optional header.

    Grades are integers; a query and document judged twice with different grades, or a file with
    no judgement, is an error. When ``queries`` (or ``corpus``) is given, a judgement naming an
    unknown query (or document) is an error.
    """
    path = Path(path)
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    for number, line in text_lines(path, "qrels", "query-id, corpus-id, score"):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and fields[0] == "query-id":
            continue
        if len(fields) != 3:
            raise DataFormatError(
                path, number, f"expected 3 tab-separated columns (query-id, corpus-id, score), found {len(fields)}"
            )
        qid, doc_id, score = (field.strip() for field in fields)
        if not qid or not doc_id:
            raise DataFormatError(path, number, "empty query-id or corpus-id")
        if number == 1 and not score.lstrip("+-").replace(".", "", 1).isdigit():
            raise DataFormatError(path, number, "neither a judgement nor the header query-id<TAB>corpus-id<TAB>score")
        grade = _grade(path, number, score)
        if queries is not None and qid not in queries:
            raise DataFormatError(path, number, f"query {qid!r} is not in the queries file")
        if corpus is not None and doc_id not in corpus:
            raise DataFormatError(path, number, f"document {doc_id!r} is not in the corpus")
        known = qrels.setdefault(qid, {})
        if doc_id in known and known[doc_id] != grade:
            raise DataFormatError(
                path,
                number,
                f"query {qid!r} and document {doc_id!r} are judged "
                f"{grade} here and {known[doc_id]} on line {lines[qid, doc_id]}",
            )
        known[doc_id] = grade
        lines.setdefault((qid, doc_id), number)
    if not qrels:
        raise DataFormatError(path, None, "no judgements (expected lines query-id<TAB>corpus-id<TAB>score)")
    return qrels


def check_judged_documents(qrels: Qrels, corpus: Corpus | set[str], path: str | Path, drop: bool = False) -> Qrels:
    """Warn, naming them, about judgements of documents absent from ``corpus`` (they cannot be
    retrieved; BEIR's ArguAna has five); with ``drop`` (training), return ``qrels`` without them."""
    missing = [(qid, doc_id) for qid, docs in qrels.items() for doc_id in docs if doc_id not in corpus]
    if not missing:
        return qrels
    if len(missing) == sum(map(len, qrels.values())):
        raise DataFormatError(
            path,
            None,
            f"none of the judged documents is in the corpus (e.g. {missing[0][1]!r}); "
            "is this the qrels file of another collection?",
        )
    shown = ", ".join(f"{q}/{d}" for q, d in missing[:5]) + (", ..." if len(missing) > 5 else "")
    action = "skipped" if drop else "kept: they count as relevant but cannot be retrieved"
    warn_input(path, f"{len(missing)} judgement(s) name documents absent from the corpus ({shown}); {action}")
    if not drop:
        return qrels
    absent = set(missing)
    kept = {q: {d: g for d, g in docs.items() if (q, d) not in absent} for q, docs in qrels.items()}
    return {q: docs for q, docs in kept.items() if docs}


def write_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write qrels in BEIR's TSV layout (with header), atomically."""
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
    if len(qrels) < 2:
        raise ValueError(f"a validation split needs at least two judged queries, got {len(qrels)}")
    qids = sorted(qrels)
    held = max(1, round(len(qids) * fraction))
    valid_ids = set(random.Random(seed).sample(qids, held))
    train = {q: qrels[q] for q in qids if q not in valid_ids}
    valid = {q: qrels[q] for q in qids if q in valid_ids}
    return train, valid


class SplitOverlapError(DataFormatError):
    """Two splits of a collection judge the same queries."""


NESTED_SPLITS = {("train", "valid")}  # the validation split is carved from train (training removes it)


def _shown(ids: set[str], limit: int = 5) -> str:
    first = sorted(ids)[:limit]
    return ", ".join(map(repr, first)) + (", ..." if len(ids) > limit else "")


def check_disjoint_splits(judged: dict[str, tuple[str | Path, set[str]]]) -> None:
    """The query ids judged in different splits (``split -> (file, ids)``) are disjoint, but for the
    validation split inside train: a query of the test split in the training (or a tuning) split is
    learnt on and then scored. An overlap names both files, the count and the first ids."""
    names = list(judged)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if (first, second) in NESTED_SPLITS or (second, first) in NESTED_SPLITS:
                continue
            shared = judged[first][1] & judged[second][1]
            if shared:
                raise SplitOverlapError(
                    judged[first][0],
                    None,
                    f"{len(shared)} query id(s) are also judged in "
                    f"{judged[second][0]} (the {second!r} split): {_shown(shared)}; the queries of "
                    f"the {first!r} and {second!r} splits must be disjoint",
                )


def check_split_queries(folder: str | Path, split: str, qrels: Qrels) -> None:
    """The judged queries of ``split`` are judged in no other split of the BEIR ``folder``
    (:func:`check_disjoint_splits`)."""
    folder = Path(folder)
    own = folder / "qrels" / f"{split}.tsv"
    judged = {split: (own, set(qrels))}
    for path in sorted((folder / "qrels").glob("*.tsv")):
        if path.stem != split and (split, path.stem) not in NESTED_SPLITS and (path.stem, split) not in NESTED_SPLITS:
            judged[path.stem] = (path, set(load_qrels(path)))
    check_disjoint_splits(judged)


def corpus_path(folder: str | Path, split: str) -> Path:
    """The corpus a split searches: ``corpus.<split>.jsonl`` where a split has its own (BEIR's NQ
    training corpus differs from its test corpus), else ``corpus.jsonl``."""
    own = Path(folder) / f"corpus.{split}.jsonl"
    if split == "test" and own.is_file():  # it would silently replace corpus.jsonl for the test split
        raise DataFormatError(
            own,
            None,
            "the test split's corpus is corpus.jsonl, not this file "
            "(corpus.<split>.jsonl is for another split whose documents differ, "
            "e.g. corpus.train.jsonl): remove or rename it",
        )
    return own if own.is_file() else Path(folder) / "corpus.jsonl"


@dataclass
class Collection:
    """A BEIR-layout folder: its corpus, its queries and the qrels of one split."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels

    @classmethod
    def load(cls, folder: str | Path, split: str = "test", training: bool = False) -> Collection:
        """Read ``split``'s corpus, the queries and the split's qrels. Judgements of documents absent
        from the corpus are named in a warning, and left out when the qrels are for ``training``."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataFormatError(folder, None, "collection folder does not exist (expected a BEIR-layout folder)")
        corpus = load_corpus(corpus_path(folder, split))
        queries = load_queries(folder / "queries.jsonl")
        path = folder / "qrels" / f"{split}.tsv"
        judged = load_qrels(path, queries=queries)
        check_split_queries(folder, split, judged)
        qrels = check_judged_documents(judged, corpus, path, drop=training)
        return cls(corpus=corpus, queries=queries, qrels=qrels)

    def judged_queries(self) -> Queries:
        """The queries that have at least one judgement in this split."""
        return {qid: self.queries[qid] for qid in self.qrels}
