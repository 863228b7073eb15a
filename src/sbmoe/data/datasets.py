"""The study's datasets exported to BEIR layout, from the table ``workflow/datasets.yaml``
(:mod:`sbmoe.data.table`; its statistics are :mod:`sbmoe.data.statistics`).

:func:`export_dataset` turns one entry of the table into a BEIR folder::

    <dest>/corpus.jsonl            {"_id", "title", "text"} per line
    <dest>/queries.jsonl           {"_id", "text"} per line, the queries of every split
    <dest>/qrels/<split>.tsv       query-id, corpus-id, score (with header)
    <dest>/corpus.<split>.jsonl    only for a split whose documents differ from corpus.jsonl's
    <dest>/SOURCE.json             where the data came from, digests, counts

``corpus.jsonl`` holds the corpus of the test split (the one retrieval searches); a split whose
source has other documents (BEIR's nq-train) gets its own corpus file. The splits' judged queries
are disjoint (but for the validation split, carved from train).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from tqdm import tqdm

from sbmoe.data.download import download, extract_zip
from sbmoe.data.table import (
    MIRROR_ENV,
    VALIDATION_SPLIT,
    DatasetSpec,
    SplitSource,
    lookup,
)
from sbmoe.io.atomic import DiskFullError, atomic_path, write_json
from sbmoe.io.collection import (
    DataFormatError,
    Qrels,
    SplitOverlapError,
    check_disjoint_splits,
    check_judged_documents,
    corpus_path,
    load_corpus,
    load_qrels,
    load_queries,
    read_jsonl,
    split_validation,
    write_qrels,
)

log = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """A dataset that is neither on disk nor obtainable from its source."""


# ---------------------------------------------------------------------------------------------
# Reading the sources


class _Split(NamedTuple):
    """One split's records as streams; splits with equal ``corpus`` keys share their documents."""

    corpus: Any
    documents: Callable[[], Iterator[tuple[str, str, str]]]  # (doc_id, title, text)
    queries: Callable[[], Iterator[tuple[str, str]]]  # (query_id, text)
    qrels: Callable[[], Iterator[tuple[str, str, int]]]  # (query_id, doc_id, grade)
    totals: dict[str, int | None]


def _document_fields(doc: Any) -> tuple[str, str]:
    """(title, text) of an ir_datasets document: its ``title`` and ``text`` (or ``body``) fields."""
    title = getattr(doc, "title", None) or ""
    for field in ("text", "body"):
        value = getattr(doc, field, None)
        if isinstance(value, str):
            return title, value
    return title, doc.default_text()


def _query_text(query: Any) -> str:
    text = getattr(query, "text", None)
    return text if isinstance(text, str) else query.default_text()


def _ir_datasets_split(dataset_id: str) -> _Split:
    import ir_datasets

    dataset = ir_datasets.load(dataset_id)
    meta = dataset.metadata() if hasattr(dataset, "metadata") else {}
    return _Split(
        corpus=dataset.docs_handler(),
        documents=lambda: ((doc.doc_id, *_document_fields(doc)) for doc in dataset.docs_iter()),
        queries=lambda: ((query.query_id, _query_text(query)) for query in dataset.queries_iter()),
        qrels=lambda: ((qrel.query_id, qrel.doc_id, int(qrel.relevance)) for qrel in dataset.qrels_iter()),
        totals={kind: meta.get(kind, {}).get("count") for kind in ("docs", "queries", "qrels")},
    )


def _beir_folder_split(folder: Path, split: str) -> _Split:
    """A split of a BEIR folder (BEIR's own zips), read with the :mod:`sbmoe.io.collection` loaders."""

    def qrels() -> Iterator[tuple[str, str, int]]:
        for qid, docs in load_qrels(folder / "qrels" / f"{split}.tsv").items():
            yield from ((qid, doc_id, grade) for doc_id, grade in docs.items())

    return _Split(
        corpus=("archive", folder),
        documents=lambda: ((i, doc["title"], doc["text"]) for i, doc in load_corpus(folder / "corpus.jsonl").items()),
        queries=lambda: iter(load_queries(folder / "queries.jsonl").items()),
        qrels=qrels,
        totals={},
    )


def _multi_domain_split(folder: Path, split: str) -> _Split:
    """A split of the Multi-Domain Benchmark: ``collection.jsonl`` and ``<split>/queries.jsonl``,
    whose ``rel_doc_ids`` are the relevant documents (grade 1)."""
    queries_path = folder / split / "queries.jsonl"

    def documents() -> Iterator[tuple[str, str, str]]:
        for _, record in read_jsonl(folder / "collection.jsonl", "id"):
            yield str(record["id"]), record.get("title") or "", record.get("text") or ""

    def qrels() -> Iterator[tuple[str, str, int]]:
        for number, record in read_jsonl(queries_path, "id"):
            relevant = record.get("rel_doc_ids")
            if not isinstance(relevant, list):
                raise DataFormatError(queries_path, number, "query has no 'rel_doc_ids' list")
            yield from ((str(record["id"]), str(doc_id), 1) for doc_id in relevant)

    return _Split(
        corpus=("archive", folder),
        documents=documents,
        queries=lambda: ((str(r["id"]), str(r["text"])) for _, r in read_jsonl(queries_path, "id")),
        qrels=qrels,
        totals={},
    )


# archive format -> (a file at the root of its data folder, the split reader)
_ARCHIVE_READERS = {
    "beir": ("corpus.jsonl", _beir_folder_split),
    "multi-domain": ("collection.jsonl", _multi_domain_split),
}


def _fetch_archive(source: SplitSource, downloads: Path) -> tuple[Path, dict]:
    """Download and unpack an archive once; return its extracted folder and its provenance."""
    archive = downloads / Path(urlparse(source.url).path).name
    digest = download(source.url, archive, sha256=source.sha256)
    if source.sha256 is None:
        log.warning(
            "UNVERIFIED archive %s (no sha256 pinned in the datasets table for %s); its sha256 is %s. "
            "Check it and pin it in workflow/datasets.yaml.",
            archive,
            source.url,
            digest,
        )
    extracted = archive.with_name(f"{archive.name.removesuffix('.zip')}-{digest[:12]}")  # one per content
    if not extracted.is_dir():
        extract_zip(archive, extracted)
    verified = source.sha256 is not None
    return extracted, {"url": source.url, "sha256": digest, "sha256_pinned": source.sha256, "verified": verified}


def _open_split(source: SplitSource, split: str, downloads: Path, archives: dict[str, tuple[Path, dict]]) -> _Split:
    if source.ir_datasets is not None:
        return _ir_datasets_split(source.ir_datasets)
    if source.url not in archives:
        archives[source.url] = _fetch_archive(source, downloads)
    extracted = archives[source.url][0]
    marker, reader = _ARCHIVE_READERS[source.format]
    found = sorted(extracted.rglob(marker), key=lambda path: len(path.parts))
    if not found:
        raise DataFormatError(extracted, None, f"the archive from {source.url} holds no {marker}")
    return reader(found[0].parent, split)


# ---------------------------------------------------------------------------------------------
# Writing BEIR layout


def _write_jsonl(path: Path, records: Iterable[dict], description: str, total: int | None = None) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in tqdm(records, desc=description, total=total, unit=" records"):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def _document_records(documents: Iterable[tuple[str, str, str]], ids: set[str]) -> Iterator[dict]:
    """Corpus records of ``(doc_id, title, text)`` tuples, adding each id to ``ids``."""
    for doc_id, title, text in documents:
        ids.add(doc_id)
        yield {"_id": doc_id, "title": title, "text": text}


def _gain(grade: int, grade_map: dict[int, int | None] | None, name: str) -> int | None:
    if grade_map is None:
        return grade
    if grade not in grade_map:
        raise ValueError(f"{name}: grade {grade} is not in the table's grade_map {grade_map}")
    return grade_map[grade]


def _export_sources(spec: DatasetSpec, folder: Path, downloads: Path) -> dict:
    """Write ``spec``'s splits from their sources into ``folder``; return the provenance record."""
    archives: dict[str, tuple[Path, dict]] = {}
    splits = {split: _open_split(source, split, downloads, archives) for split, source in spec.splits.items()}
    main = "test" if "test" in splits else next(iter(splits))
    corpus_files: dict[Any, str] = {}
    corpora = {}
    doc_ids: dict[str, set[str]] = {}  # per corpus file, to name judgements of absent documents
    for split in [main, *(s for s in splits if s != main)]:
        if splits[split].corpus in corpus_files:
            continue
        file_name = "corpus.jsonl" if split == main else f"corpus.{split}.jsonl"
        corpus_files[splits[split].corpus] = file_name
        records = _document_records(splits[split].documents(), doc_ids.setdefault(file_name, set()))
        total = splits[split].totals.get("docs")
        corpora[file_name] = _write_jsonl(folder / file_name, records, f"{spec.name} {file_name}", total)
    queries: dict[str, str] = {}
    qrels_counts = {}
    judged: dict[str, tuple[str, set[str]]] = {}  # split -> (its source, its judged queries)
    for split, data in splits.items():
        for qid, text in tqdm(data.queries(), desc=f"{spec.name} {split} queries", total=data.totals.get("queries")):
            if queries.setdefault(qid, text) != text:
                raise ValueError(f"{spec.name}: query {qid!r} has different texts in two splits")
        qrels: Qrels = {}
        for qid, doc_id, grade in tqdm(data.qrels(), desc=f"{spec.name} {split} qrels", total=data.totals.get("qrels")):
            gain = _gain(grade, spec.grade_map, spec.name)
            if gain is not None:
                qrels.setdefault(qid, {})[doc_id] = gain
        check_judged_documents(qrels, doc_ids[corpus_files[data.corpus]], f"{spec.name} {split} qrels")
        judged[split] = (f"{spec.name} {split} qrels ({_source_name(spec.splits[split])})", set(qrels))
        write_qrels(folder / "qrels" / f"{split}.tsv", qrels)
        qrels_counts[split] = {"judged_queries": len(qrels), "qrels": sum(map(len, qrels.values()))}
    check_disjoint_splits(judged)
    records = ({"_id": qid, "text": text} for qid, text in queries.items())
    _write_jsonl(folder / "queries.jsonl", records, f"{spec.name} queries.jsonl")
    splits_record = {}
    for split, source in spec.splits.items():
        described = {key: value for key, value in asdict(source).items() if value is not None}
        splits_record[split] = {**described, "corpus_file": corpus_files[splits[split].corpus]}
    record = {"origin": "source", "splits": splits_record, "archives": [info for _, info in archives.values()]}
    if any(source.ir_datasets for source in spec.splits.values()):
        import ir_datasets

        record["ir_datasets_version"] = ir_datasets.__version__
    record["counts"] = {"corpora": corpora, "queries": len(queries), "qrels": qrels_counts}
    return record


def _source_name(source: SplitSource) -> str:
    return f"ir_datasets {source.ir_datasets}" if source.ir_datasets else str(source.url)


def check_beir_folder(folder: str | os.PathLike, splits: Iterable[str]) -> dict:
    """Check that ``folder`` holds a dataset in BEIR layout and return its counts.

    Every corpus file, ``queries.jsonl`` and ``qrels/<split>.tsv`` for each of ``splits`` must be
    present and parse with the :mod:`sbmoe.io.collection` loaders; otherwise :class:`DataFormatError`
    names the file.
    """
    folder = Path(folder)
    corpus_paths = [folder / "corpus.jsonl", *sorted(folder.glob("corpus.*.jsonl"))]
    corpora = {path.name: set(load_corpus(path)) for path in corpus_paths}
    queries = load_queries(folder / "queries.jsonl")
    qrels_counts = {}
    judged = {}
    for split in splits:
        path = folder / "qrels" / f"{split}.tsv"
        qrels = load_qrels(path, queries=queries)
        check_judged_documents(qrels, corpora[corpus_path(folder, split).name], path)
        qrels_counts[split] = {"judged_queries": len(qrels), "qrels": sum(map(len, qrels.values()))}
        judged[split] = (path, set(qrels))
    check_disjoint_splits(judged)
    return {
        "corpora": {name: len(ids) for name, ids in corpora.items()},
        "queries": len(queries),
        "qrels": qrels_counts,
    }


def _stage_mirror(spec: DatasetSpec, source: Path, dest: Path) -> Path:
    """Copy a mirrored BEIR folder into ``dest`` (atomically), after checking it."""
    counts = check_beir_folder(source, spec.splits)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            target = tmp / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        record = {"origin": "mirror", "mirror": str(source), "counts": counts}
        write_json(tmp / "SOURCE.json", _source_record(spec, record))
    log.info("staged %s from the mirror %s", spec.name, source)
    return dest


def _source_record(spec: DatasetSpec, record: dict) -> dict:
    conventions = {"relevance_threshold": spec.relevance_threshold, "drop_self_hits": spec.drop_self_hits}
    if spec.grade_map is not None:
        conventions["grade_map"] = {str(k): v for k, v in spec.grade_map.items()}
    return {"dataset": spec.name, **record, "conventions": conventions}


def missing_dataset_message(spec: DatasetSpec, dest: str | os.PathLike, cause: str) -> str:
    """What to do when a dataset cannot be obtained: which files to put where."""
    dest = Path(dest)
    lines = [
        f"dataset {spec.name!r} is not on disk and could not be obtained from its source ({cause}).",
        "Put it in BEIR layout by hand, then rerun:",
        f'  {dest / "corpus.jsonl"}    one JSON object per line: {{"_id", "title", "text"}}',
        f'  {dest / "queries.jsonl"}   one JSON object per line: {{"_id", "text"}}',
        *(
            f"  {dest / 'qrels' / f'{split}.tsv'}   tab-separated, header 'query-id<TAB>corpus-id<TAB>score'"
            for split in spec.splits
        ),
        f"  (a split whose documents are not those of corpus.jsonl: {dest / 'corpus.<split>.jsonl'})",
        f"or set {MIRROR_ENV}=<folder> (or the pipeline's mirror setting) to a folder holding "
        f"<folder>/{spec.name}/ in that layout.",
    ]
    return "\n".join(lines)


def export_dataset(
    name: str,
    table: Mapping[str, DatasetSpec],
    dest: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    downloads: str | os.PathLike | None = None,
) -> Path:
    """Make ``dest`` a BEIR folder of the dataset ``name`` and return it.

    In order of preference: ``dest`` as it is, when it already holds a valid BEIR folder; a copy of
    ``<mirror>/<name>/`` (``mirror`` or else the ``SBMOE_DATASET_MIRROR`` environment variable);
    an export from the table's sources (ir_datasets, or archives downloaded to ``downloads``,
    by default ``<dest>/../.downloads``). Everything is written to a temporary folder renamed onto
    ``dest`` at the end, with a ``SOURCE.json``. A source that fails (network, ir_datasets, archive)
    raises :class:`DatasetUnavailableError` saying which files to put where.
    """
    spec = lookup(table, name)
    dest = Path(dest)
    if dest.is_dir():
        try:
            check_beir_folder(dest, spec.splits)
            log.info("%s already holds %s in BEIR layout; kept as is", dest, name)
            return dest
        except DataFormatError as error:
            log.warning("%s is not a valid BEIR folder (%s); exporting %s again", dest, error, name)
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror and (Path(mirror) / name).is_dir():
        return _stage_mirror(spec, Path(mirror) / name, dest)
    downloads = Path(downloads) if downloads else dest.parent / ".downloads"
    try:
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            record = _export_sources(spec, tmp, downloads)
            write_json(tmp / "SOURCE.json", _source_record(spec, record))
    except (SplitOverlapError, DiskFullError):  # the data or the disk: another source would not help
        raise
    except Exception as error:  # ir_datasets, urllib and archives fail in many ways; keep the cause
        cause = f"{type(error).__name__}: {error}"
        raise DatasetUnavailableError(missing_dataset_message(spec, dest, cause)) from error
    log.info("exported %s to %s", name, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# Validation split


def write_validation_split(folder: str | os.PathLike, fraction: float = 0.05, seed: int = 42) -> Path:
    """Write ``qrels/valid.tsv``: ``fraction`` of the train queries, chosen by ``seed``.

    ``qrels/train.tsv`` stays complete; training code removes the validation queries itself.
    The same folder, fraction and seed always give the same file, written atomically.
    """
    folder = Path(folder)
    train = folder / "qrels" / "train.tsv"
    qrels = load_qrels(train)
    if len(qrels) < 2:
        raise DataFormatError(train, None, "one judged query: a validation split needs at least two")
    _, valid = split_validation(qrels, fraction, seed)
    path = folder / "qrels" / f"{VALIDATION_SPLIT}.tsv"
    write_qrels(path, valid)
    return path
