"""The datasets table, export to BEIR layout (ir_datasets offline, local mirror), validation split,
statistics and the two Snakemake scripts."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest

from sbmoe.analysis.tables.dataset_stats import statistics_table, write_statistics_csv
from sbmoe.data.datasets import DatasetUnavailableError, export_dataset, write_validation_split
from sbmoe.data.statistics import dataset_statistics
from sbmoe.data.table import MIRROR_ENV, TableError, load_table, parse_table
from sbmoe.io.collection import Collection, load_corpus, load_qrels, load_queries, write_qrels

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "workflow" / "datasets.yaml"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.usefixtures("shared_data")

BEIR_TEST_SETS = [
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
]


@pytest.fixture(autouse=True)
def no_mirror_from_environment(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


URL = "https://example.org/archive.zip"


def _entry(**overrides) -> dict:
    entry = {"splits": {"test": {"ir_datasets": "cranfield"}}, "relevance_threshold": 1, "drop_self_hits": False}
    return {**entry, **overrides}


# ---------------------------------------------------------------------------------------------
# The table


def test_table_names_every_dataset_of_the_study_with_its_conventions():
    table = load_table(TABLE)
    in_domain = ["msmarco", "trec-dl-2019", "trec-dl-2020", "nq", "hotpotqa", "political-science", "computer-science"]
    assert set(table) == set(in_domain) | set(BEIR_TEST_SETS) | {"cranfield"}
    assert {name for name, spec in table.items() if spec.relevance_threshold == 2} == {"trec-dl-2019", "trec-dl-2020"}
    assert all(spec.relevance_threshold in (1, 2) for spec in table.values())
    assert {name for name, spec in table.items() if spec.drop_self_hits} == {"arguana", "quora"}
    assert table["msmarco"].splits["train"].ir_datasets == "beir/msmarco/train"
    assert table["msmarco"].splits["test"].ir_datasets == "beir/msmarco/dev"
    assert table["nq"].splits["train"].url.endswith("/BEIR/datasets/nq-train.zip")
    assert table["nq"].splits["test"].ir_datasets == "beir/nq"
    assert table["webis-touche2020"].splits["test"].ir_datasets == "beir/webis-touche2020/v2"
    assert set(table["scifact"].splits) == {"train", "test"}
    assert set(table["cranfield"].splits) == {"test"}
    assert table["political-science"].splits["train"].format == "multi-domain"
    for spec in table.values():
        for source in spec.splits.values():
            assert source.sha256 is None or len(source.sha256) == 64


def test_every_ir_datasets_id_in_the_table_is_known_to_ir_datasets():
    ir_datasets = pytest.importorskip("ir_datasets")
    for spec in load_table(TABLE).values():
        for source in spec.splits.values():
            if source.ir_datasets:
                ir_datasets.load(source.ir_datasets)  # offline: raises KeyError for an unknown id


def test_cranfield_grade_map_turns_ir_datasets_codes_into_the_shared_gains():
    """ir_datasets passes cranqrel's codes through (1 = complete answer); the map must give the
    shared copy's distribution of gains (4:128, 3:387, 2:734, 1:363; 1,612 judgements)."""
    ir_datasets = pytest.importorskip("ir_datasets")
    grade_map = load_table(TABLE)["cranfield"].grade_map
    assert grade_map == {1: 4, 2: 3, 3: 2, 4: 1, -1: None}
    by_code = ir_datasets.load("cranfield").metadata()["qrels"]["fields"]["relevance"]["counts_by_value"]
    gains = {grade_map[int(code)]: count for code, count in by_code.items() if grade_map[int(code)] is not None}
    assert gains == {4: 128, 3: 387, 2: 734, 1: 363}


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        (_entry(relevance=1), "'relevance'"),
        (_entry(splits={"test": {"ir_datasets": "cranfield", "sha": "x"}}), "'sha'"),
        (_entry(splits={"test": {"url": URL, "sha256": None, "format": "beir", "md5": "y"}}), "'md5'"),
    ],
)
def test_unknown_key_is_an_error_naming_it(entry, named):
    with pytest.raises(TableError, match=f"unknown key {named}") as caught:
        parse_table({"datasets": {"toy": entry}})
    assert "'toy'" in str(caught.value)


@pytest.mark.parametrize("field", ["splits", "relevance_threshold", "drop_self_hits"])
def test_missing_field_is_an_error_naming_it(field):
    entry = _entry()
    del entry[field]
    with pytest.raises(TableError, match=f"dataset 'toy': missing field '{field}'"):
        parse_table({"datasets": {"toy": entry}})


@pytest.mark.parametrize(
    "source",
    [
        {"url": URL, "format": "beir"},
        {"url": URL, "sha256": "abc", "format": "beir"},
        {"url": URL, "sha256": None, "format": "tar"},
        {"url": "a.zip", "sha256": None, "format": "beir"},
        {},
    ],
)
def test_bad_archive_source_is_an_error(source):
    with pytest.raises(TableError, match="split 'test'"):
        parse_table({"datasets": {"toy": _entry(splits={"test": source})}})


def test_unknown_dataset_name_is_an_error(tmp_path):
    with pytest.raises(TableError, match="unknown dataset 'nope'"):
        export_dataset("nope", load_table(TABLE), tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# Export from ir_datasets, offline: a dataset built from local files


class TitledDoc(NamedTuple):
    doc_id: str
    title: str
    body: str


DOCS = [
    ("d1", "Solar wind", "Charged particles stream from the sun."),
    ("d2", "", "Wings in a slipstream"),
    ("d3", "Café", "Unicode « text » survives."),
]
TRAIN_QUERIES = [("q1", "what is the solar wind"), ("q2", "lift of a wing")]
TEST_QUERIES = [("q3", "unicode café")]
TRAIN_QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d1", 0)]
TEST_QRELS = [("q3", "d3", 1), ("q3", "d1", -1)]


def _register(tmp_path: Path, docs_cls=TitledDoc, docs=DOCS) -> dict[str, str]:
    """Register train and test datasets over local TSV/TREC files; return split -> ir_datasets id."""
    from ir_datasets import registry
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    tmp_path.mkdir(parents=True)

    def tsv(name, rows):
        path = tmp_path / name
        path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
        return LocalDownload(path)

    def trec(name, rows):
        path = tmp_path / name
        path.write_text("".join(f"{q} 0 {d} {g}\n" for q, d, g in rows), encoding="utf-8")
        return LocalDownload(path)

    corpus = TsvDocs(tsv("docs.tsv", docs), doc_cls=docs_cls)
    prefix = f"sbmoe-test/{uuid.uuid4().hex}"
    ids = {}
    for split, queries, qrels in (("train", TRAIN_QUERIES, TRAIN_QRELS), ("test", TEST_QUERIES, TEST_QRELS)):
        ids[split] = f"{prefix}/{split}"
        topics = TsvQueries(tsv(f"{split}-queries.tsv", queries))
        registry.register(ids[split], Dataset(corpus, topics, TrecQrels(trec(f"{split}.qrels", qrels), {})))
    return ids


def _qrels_rows(qrels) -> list[tuple[str, str, int]]:
    return sorted((q, d, g) for q, docs in qrels.items() for d, g in docs.items())


def test_ir_datasets_export_agrees_record_for_record(tmp_path):
    pytest.importorskip("ir_datasets")
    ids = _register(tmp_path / "src")
    table = parse_table({"datasets": {"toy": _entry(splits={s: {"ir_datasets": i} for s, i in ids.items()})}})
    dest = export_dataset("toy", table, tmp_path / "datasets" / "toy")

    assert sorted(p.name for p in dest.iterdir()) == ["SOURCE.json", "corpus.jsonl", "qrels", "queries.jsonl"]
    assert load_corpus(dest / "corpus.jsonl") == {i: {"title": t, "text": b} for i, t, b in DOCS}
    assert load_queries(dest / "queries.jsonl") == dict(TRAIN_QUERIES + TEST_QUERIES)
    assert _qrels_rows(load_qrels(dest / "qrels" / "train.tsv")) == sorted(TRAIN_QRELS)
    assert _qrels_rows(load_qrels(dest / "qrels" / "test.tsv")) == sorted(TEST_QRELS)
    source = json.loads((dest / "SOURCE.json").read_text())
    assert source["dataset"] == "toy" and source["origin"] == "source"
    assert source["splits"]["train"] == {"ir_datasets": ids["train"], "corpus_file": "corpus.jsonl"}
    assert source["counts"] == {
        "corpora": {"corpus.jsonl": 3},
        "queries": 3,
        "qrels": {"train": {"judged_queries": 2, "qrels": 3}, "test": {"judged_queries": 1, "qrels": 2}},
    }
    assert [p.name for p in dest.parent.iterdir()] == ["toy"]  # no temporary folder left


def test_split_with_other_documents_gets_its_own_corpus_and_grade_map_applies(tmp_path):
    pytest.importorskip("ir_datasets")
    from ir_datasets.formats import GenericDoc

    test_ids = _register(tmp_path / "a")
    train_ids = _register(tmp_path / "b", docs_cls=GenericDoc, docs=[("d1", "training passage"), ("d2", "another")])
    entry = _entry(
        splits={"train": {"ir_datasets": train_ids["train"]}, "test": {"ir_datasets": test_ids["test"]}},
        grade_map={-1: None, 0: 0, 1: 3, 2: 2},
    )
    dest = export_dataset("toy", parse_table({"datasets": {"toy": entry}}), tmp_path / "toy")

    assert load_corpus(dest / "corpus.jsonl") == {i: {"title": t, "text": b} for i, t, b in DOCS}
    assert load_corpus(dest / "corpus.train.jsonl") == {
        "d1": {"title": "", "text": "training passage"},
        "d2": {"title": "", "text": "another"},
    }
    assert load_qrels(dest / "qrels" / "test.tsv") == {"q3": {"d3": 3}}
    assert load_qrels(dest / "qrels" / "train.tsv") == {"q1": {"d1": 3}, "q2": {"d2": 2, "d1": 0}}


def test_existing_valid_folder_is_kept_as_is(tmp_path):
    pytest.importorskip("ir_datasets")
    ids = _register(tmp_path / "src")
    table = parse_table({"datasets": {"toy": _entry(splits={s: {"ir_datasets": i} for s, i in ids.items()})}})
    dest = export_dataset("toy", table, tmp_path / "toy")
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    (tmp_path / "src" / "docs.tsv").unlink()  # the source is gone: only the existing folder can serve
    assert export_dataset("toy", table, dest) == dest
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


# ---------------------------------------------------------------------------------------------
# Export from downloaded archives, served by a local HTTP server


@pytest.fixture
def archive_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving the files of ``tmp_path / "www"``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietFileHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return path


def _lines(records) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def test_multi_domain_archive_becomes_beir_with_rel_doc_ids_as_qrels(archive_server, tmp_path, caplog):
    root, base = archive_server
    collection = [
        {"id": 11, "title": "Voting", "text": "On elections.", "keywords": []},
        {"id": 12, "title": "Parties", "text": "On party systems.", "keywords": []},
    ]
    train = [{"id": 1, "text": "why vote", "rel_doc_ids": [11, 12], "user_id": "u"}]
    test = [{"id": 2, "text": "party systems", "rel_doc_ids": ["12"], "user_id": "u"}]
    archive = _zip(
        root / "political_science.zip",
        {
            "political_science/collection.jsonl": _lines(collection),
            "political_science/train/queries.jsonl": _lines(train),
            "political_science/test/queries.jsonl": _lines(test),
        },
    )
    source = {"url": f"{base}/political_science.zip", "sha256": None, "format": "multi-domain"}
    table = parse_table({"datasets": {"ps": _entry(splits={"train": source, "test": source})}})
    with caplog.at_level(logging.WARNING, logger="sbmoe.data.datasets"):
        dest = export_dataset("ps", table, tmp_path / "datasets" / "ps")

    assert load_corpus(dest / "corpus.jsonl") == {
        "11": {"title": "Voting", "text": "On elections."},
        "12": {"title": "Parties", "text": "On party systems."},
    }
    assert load_queries(dest / "queries.jsonl") == {"1": "why vote", "2": "party systems"}
    assert load_qrels(dest / "qrels" / "train.tsv") == {"1": {"11": 1, "12": 1}}
    assert load_qrels(dest / "qrels" / "test.tsv") == {"2": {"12": 1}}
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert "UNVERIFIED" in caplog.text and digest in caplog.text
    provenance = json.loads((dest / "SOURCE.json").read_text())["archives"]
    assert provenance == [{"url": source["url"], "sha256": digest, "sha256_pinned": None, "verified": False}]
    assert (tmp_path / "datasets" / ".downloads" / "political_science.zip").read_bytes() == archive.read_bytes()


def test_beir_archive_with_pinned_digest_is_verified(archive_server, tmp_path):
    root, base = archive_server
    archive = _zip(
        root / "nq-train.zip",
        {
            "nq-train/corpus.jsonl": _lines([{"_id": "t1", "title": "A", "text": "passage one"}]),
            "nq-train/queries.jsonl": _lines([{"_id": "train0", "text": "question"}]),
            "nq-train/qrels/train.tsv": "query-id\tcorpus-id\tscore\ntrain0\tt1\t1\n",
        },
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = {"url": f"{base}/nq-train.zip", "sha256": digest, "format": "beir"}
    dest = export_dataset("nq", parse_table({"datasets": {"nq": _entry(splits={"train": source})}}), tmp_path / "nq")
    assert load_corpus(dest / "corpus.jsonl") == {"t1": {"title": "A", "text": "passage one"}}
    assert load_qrels(dest / "qrels" / "train.tsv") == {"train0": {"t1": 1}}
    assert json.loads((dest / "SOURCE.json").read_text())["archives"][0]["verified"] is True

    wrong = {**source, "sha256": "0" * 64}
    with pytest.raises(DatasetUnavailableError, match="sha256 mismatch"):
        export_dataset("nq", parse_table({"datasets": {"nq": _entry(splits={"train": wrong})}}), tmp_path / "other")


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/toy.zip"


@pytest.mark.parametrize(
    "source",
    [{"ir_datasets": "sbmoe-test/no-such-dataset"}, {"url": _closed_port_url(), "sha256": None, "format": "beir"}],
    ids=["ir_datasets", "download"],
)
def test_unavailable_dataset_says_which_files_to_put_where(tmp_path, source):
    pytest.importorskip("ir_datasets")
    table = parse_table({"datasets": {"toy": _entry(splits={"train": source, "test": source})}})
    dest = tmp_path / "resources" / "datasets" / "toy"
    with pytest.raises(DatasetUnavailableError) as caught:
        export_dataset("toy", table, dest, downloads=tmp_path / "downloads")
    message = str(caught.value)
    for path in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"):
        assert str(dest / path) in message
    assert MIRROR_ENV in message and "toy" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Export from the local mirror (the shared real collections)


@needs_shared
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_scifact_from_the_mirror_keeps_its_counts(tmp_path, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv(MIRROR_ENV, str(SHARED))
    mirror = SHARED if how == "argument" else None
    dest = export_dataset("scifact", load_table(TABLE), tmp_path / "scifact", mirror=mirror)
    test, train = Collection.load(dest, "test"), Collection.load(dest, "train")
    assert len(test.corpus) == 5183 and len(test.queries) == 1109
    assert (len(test.qrels), sum(map(len, test.qrels.values()))) == (300, 339)
    assert (len(train.qrels), sum(map(len, train.qrels.values()))) == (809, 919)
    source = json.loads((dest / "SOURCE.json").read_text())
    assert source["origin"] == "mirror" and source["mirror"] == str(SHARED / "scifact")
    assert source["counts"]["qrels"]["train"] == {"judged_queries": 809, "qrels": 919}


@needs_shared
def test_cranfield_from_the_mirror_keeps_its_counts(tmp_path):
    dest = export_dataset("cranfield", load_table(TABLE), tmp_path / "cranfield", mirror=SHARED)
    test = Collection.load(dest, "test")
    assert (len(test.corpus), len(test.queries), sum(map(len, test.qrels.values()))) == (1400, 225, 1612)


# ---------------------------------------------------------------------------------------------
# Validation split


def _write_train(folder: Path, queries: int) -> dict:
    qrels = {f"q{i}": {f"d{i}": 1, f"d{i + 1}": 2} for i in range(queries)}
    write_qrels(folder / "qrels" / "train.tsv", qrels)
    return qrels


@pytest.mark.parametrize(("queries", "held_out"), [(40, 2), (100, 5), (809, 40), (10, 1)])
def test_validation_split_is_seeded_and_disjoint(tmp_path, queries, held_out):
    train = _write_train(tmp_path, queries)
    train_bytes = (tmp_path / "qrels" / "train.tsv").read_bytes()
    path = write_validation_split(tmp_path, fraction=0.05, seed=42)
    valid = load_qrels(path)
    assert path == tmp_path / "qrels" / "valid.tsv"
    assert len(valid) == held_out
    assert all(valid[q] == train[q] for q in valid)  # whole queries, with all their judgements
    assert (tmp_path / "qrels" / "train.tsv").read_bytes() == train_bytes  # train.tsv stays complete
    first = path.read_bytes()
    write_validation_split(tmp_path, fraction=0.05, seed=42)
    assert path.read_bytes() == first  # same seed, same split
    other = tmp_path / "other"
    _write_train(other, queries)
    assert load_qrels(write_validation_split(other, fraction=0.05, seed=42)) == valid


def test_validation_split_depends_on_the_seed(tmp_path):
    _write_train(tmp_path, 200)
    splits = {frozenset(load_qrels(write_validation_split(tmp_path, seed=seed))) for seed in (1, 2, 3)}
    assert len(splits) > 1


# ---------------------------------------------------------------------------------------------
# Statistics


def _tiny_folder(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Solar wind", "text": "charged particles"},  # 4 tokens
        {"_id": "d2", "title": "", "text": "one two three four five six"},  # 6 tokens
        {"_id": "d3", "title": "T", "text": "x"},
    ]  # 2 tokens
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "q1", "text": "a b c"}, {"_id": "q2", "text": "a"}, {"_id": "q3", "text": "a  b"}]  # 3, 1, 2
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    write_qrels(folder / "qrels" / "test.tsv", {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}})
    write_qrels(folder / "qrels" / "train.tsv", {"q3": {"d1": 1}})
    return folder


def test_statistics_of_a_tiny_folder_equal_hand_computed_values(tmp_path):
    stats = dataset_statistics(_tiny_folder(tmp_path / "tiny"))
    assert stats == {
        "documents": 3,
        "queries": 3,
        "mean_document_length": 4.0,
        "mean_query_length": 2.0,
        "splits": {"train": {"judged_queries": 1, "qrels": 1}, "test": {"judged_queries": 2, "qrels": 3}},
    }


def test_statistics_table_is_booktabs_with_one_row_per_dataset(tmp_path):
    tiny = dataset_statistics(_tiny_folder(tmp_path / "tiny"))
    big = {**tiny, "documents": 8841823, "splits": {"test": {"judged_queries": 6980, "qrels": 7437}}}
    table = statistics_table({"tiny_set": tiny, "msmarco": big})
    lines = table.splitlines()
    assert lines[0] == r"\begin{tabular}{lrrrrrrr}" and lines[1] == r"\toprule"
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]
    assert r"\midrule" in lines and "table" not in table.replace("tabular", "")  # no float wrapper
    assert r"tiny\_set & 3 & 1 & 1 & 2 & 3 & 4.0 & 2.0 \\" in lines
    assert r"msmarco & 8{,}841{,}823 & -- & -- & 6{,}980 & 7{,}437 & 4.0 & 2.0 \\" in lines

    csv_path = tmp_path / "stats.csv"
    write_statistics_csv(csv_path, {"tiny_set": tiny, "msmarco": big})
    assert csv_path.read_text().splitlines() == [
        "dataset,documents,queries,mean_document_length,mean_query_length,"
        "train_judged_queries,train_qrels,test_judged_queries,test_qrels",
        "tiny_set,3,3,4.0000,2.0000,1,1,2,3",
        "msmarco,8841823,3,4.0000,2.0000,,,6980,7437",
    ]


# ---------------------------------------------------------------------------------------------
# The Snakemake scripts, run as Snakemake runs them (a fresh interpreter with a `snakemake` object)

RUNNER = """
import json, runpy, sys
from types import SimpleNamespace
spec = json.loads(sys.argv[2])
smk = SimpleNamespace(**{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in spec.items()})
runpy.run_path(sys.argv[1], init_globals={"snakemake": smk}, run_name="__main__")
"""


def _run_script(name: str, smk: dict) -> subprocess.CompletedProcess:
    script = REPO / "workflow" / "scripts" / name
    return subprocess.run([sys.executable, "-c", RUNNER, str(script), json.dumps(smk)], capture_output=True, text=True)


@needs_shared
def test_snakemake_scripts_export_and_describe_a_dataset(tmp_path):
    folder, log = tmp_path / "resources" / "datasets" / "scifact", tmp_path / "logs" / "scifact.log"
    log.parent.mkdir()
    done = _run_script(
        "export_dataset.py",
        {
            "wildcards": {"dataset": "scifact"},
            "log": [str(log)],
            "output": {"folder": str(folder)},
            "params": {"table": str(TABLE), "mirror": str(SHARED), "valid_fraction": 0.05, "seed": 42},
        },
    )
    assert done.returncode == 0, done.stderr + log.read_text()
    assert "staged scifact" in log.read_text()
    assert len(load_qrels(folder / "qrels" / "valid.tsv")) == 40  # 5% of 809 train queries

    out = tmp_path / "tables"
    done = _run_script(
        "dataset_stats.py",
        {
            "input": {"folders": [str(folder)]},
            "params": {"names": ["scifact"]},
            "output": {"json": str(out / "stats.json"), "tex": str(out / "stats.tex"), "csv": str(out / "stats.csv")},
        },
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads((out / "stats.json").read_text())["scifact"]
    assert stats["documents"] == 5183 and stats["splits"]["valid"]["judged_queries"] == 40
    assert r"scifact & 5{,}183 & 809 & 919 & 40 &" in (out / "stats.tex").read_text()
    assert (out / "stats.csv").read_text().startswith("dataset,documents,queries,")
