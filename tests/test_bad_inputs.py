"""Malformed inputs: every file the library reads, every command-line argument and configuration key.

Each bad input must give a clear error (an ``InputError`` naming the file and line, or the key, and
what was expected; on the command line ``sbmoe <command>: error: ...``, exit status 2, no traceback,
no output left behind), or, where the input is usable, a warning that names it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sbmoe.io.collection import Collection
from sbmoe.io.encoded import Encoded
from sbmoe.io.errors import InputError, InputWarning
from sbmoe.models.encoder import EncoderConfig
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.pipeline.cli import main
from sbmoe.pipeline.config import ConfigError, load_config
from sbmoe.pipeline.stages import init_stage, pool_stage, search_stage, train_stage
from sbmoe.pipeline.study import StudyError, check_study, study_table
from sbmoe.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


# ---- shared inputs: a copy of the tiny collection, two models, pooled embeddings and a run ----


@pytest.fixture(scope="module")
def good(tmp_path_factory, tiny_collection, tiny_encoder_dir) -> dict[str, Path]:
    """Well-formed inputs; each test copies the one it breaks."""
    root = tmp_path_factory.mktemp("good")
    encoder = {"name_or_path": str(tiny_encoder_dir), "query_max_length": 32, "doc_max_length": 64}
    init_stage(ModelConfig(encoder=EncoderConfig(**encoder), variant="finetune"), root / "base")
    init_stage(ModelConfig(encoder=EncoderConfig(**encoder), variant="sbmoe", num_experts=3), root / "block")
    pool_stage(root / "base", tiny_collection, "queries", root / "queries.npz", split="test", device="cpu")
    pool_stage(root / "base", tiny_collection, "queries", root / "train-queries.npz", split="train", device="cpu")
    for shard in range(2):
        pool_stage(
            root / "base",
            tiny_collection,
            "corpus",
            root / f"corpus-{shard}.npz",
            shard=shard,
            num_shards=2,
            device="cpu",
        )
    search_stage(
        root / "queries.npz", [root / "corpus-0.npz", root / "corpus-1.npz"], root / "run.trec", k=20, device="cpu"
    )
    config = {
        "encoder": encoder,
        "model": {"variant": "sbmoe", "num_experts": 3},
        "training": {"epochs": 1, "batch_size": 8, "train_layers": 0},
        "seed": 3,
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return {
        "collection": tiny_collection,
        "encoder": tiny_encoder_dir,
        "base": root / "base",
        "block": root / "block",
        "queries": root / "queries.npz",
        "train_queries": root / "train-queries.npz",
        "corpus": [root / "corpus-0.npz", root / "corpus-1.npz"],
        "run": root / "run.trec",
        "config": root / "config.yaml",
    }


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    return target


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def fails(capsys, argv: list[str], out: Path, *expected: str) -> str:
    """Run the command line in-process; it must exit with status 2, print ``error:`` and each of
    ``expected``, print no traceback, and leave ``out`` empty."""
    out.mkdir(exist_ok=True)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error: " in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert listing(out) == [], listing(out)
    return err


def usage_error(capsys, argv: list[str], *expected: str) -> None:
    """An argument rejected by the parser: exit status 2 and a message naming it."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"


# ---- corpus and queries (JSON lines) ----


def _corpus_case(folder: Path, case: str) -> tuple[Path, str, str]:
    """Break the corpus or the queries of ``folder``; return the file, its expected location and words."""
    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    lines = corpus.read_bytes().splitlines(keepends=True)
    if case == "non-utf8-corpus":
        corpus.write_bytes(b"".join(lines[:2]) + b'{"_id": "z", "text": "caf\xe9"}\n' + b"".join(lines[2:]))
        return corpus, f"{corpus}:3:", "not UTF-8"
    if case == "non-utf8-queries":
        queries.write_bytes(queries.read_bytes() + b'{"_id": "q99", "text": "\xff\xfe"}\n')
        return queries, f"{queries}:41:", "not UTF-8"
    if case == "truncated-json":
        corpus.write_bytes(b"".join(lines[:4]) + lines[4][:20])
        return corpus, f"{corpus}:5:", "Unterminated string starting at column"
    if case == "empty-corpus":
        corpus.write_bytes(b"")
        return corpus, str(corpus), "no records"
    if case == "null-id":
        corpus.write_bytes(b"".join(lines[:1]) + b'{"_id": null, "text": "t"}\n')
        return corpus, f"{corpus}:2:", "'_id' must be a string"
    if case == "id-with-space":
        corpus.write_bytes(b'{"_id": "d 1", "text": "t"}\n' + b"".join(lines))
        return corpus, f"{corpus}:1:", "without whitespace"
    if case == "title-not-string":
        corpus.write_bytes(b'{"_id": "t1", "title": 5, "text": "t"}\n' + b"".join(lines))
        return corpus, f"{corpus}:1:", "'title' must be a string"
    if case == "json-array-line":
        queries.write_bytes(b'["q1", "text"]\n')
        return queries, f"{queries}:1:", "expected a JSON object"
    if case == "empty-queries":
        queries.write_bytes(b"\n\n")
        return queries, str(queries), "no records"
    if case == "corpus-is-a-folder":
        corpus.unlink()
        corpus.mkdir()
        return corpus, str(corpus), "a folder, not a corpus file (expected JSON lines)"
    raise AssertionError(case)


CORPUS_CASES = [
    "non-utf8-corpus",
    "non-utf8-queries",
    "truncated-json",
    "empty-corpus",
    "null-id",
    "id-with-space",
    "title-not-string",
    "json-array-line",
    "empty-queries",
    "corpus-is-a-folder",
]


@pytest.mark.parametrize("case", CORPUS_CASES)
def test_bad_collection_file_is_named_by_every_reader(tmp_path, good, capsys, case):
    folder = copy_of(good["collection"], tmp_path)
    path, where, words = _corpus_case(folder, case)
    with pytest.raises(InputError) as caught:
        Collection.load(folder, "test")
    assert where in str(caught.value) and words in str(caught.value)
    assert caught.value.path == str(path)
    kind = "queries" if "queries" in path.name else "corpus"
    fails(
        capsys,
        [
            "pool",
            "--model",
            str(good["base"]),
            "--dataset",
            str(folder),
            "--kind",
            kind,
            "--output",
            str(tmp_path / "out" / "p.npz"),
        ],
        tmp_path / "out",
        where,
        words,
    )


# ---- qrels ----


def _write_qrels(folder: Path, split: str, lines: list[str]) -> Path:
    path = folder / "qrels" / f"{split}.tsv"
    path.write_text("\n".join(["query-id\tcorpus-id\tscore", *lines]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "lines, line, words",
    [
        (["q30\td30\t1.7"], 2, "'1.7' is not an integer relevance grade"),
        (["q30\td30\tnan"], 2, "is not a number"),
        ([], None, "no judgements"),
        (["q30\td30\t1", "q31\td31\t1", "q30\td30\t2"], 4, "judged 2 here and 1 on line 2"),
        (["q30\t\t1"], 2, "empty query-id or corpus-id"),
        (["q30 d30 1"], 2, "expected 3 tab-separated columns"),
        (None, 1, "neither a judgement nor the header query-id<TAB>corpus-id<TAB>score"),
    ],
    ids=[
        "fractional-grade",
        "nan-grade",
        "empty",
        "conflicting-duplicate",
        "empty-id",
        "spaces-not-tabs",
        "other-header",
    ],
)
def test_bad_qrels_is_named(tmp_path, good, capsys, lines, line, words):
    folder = copy_of(good["collection"], tmp_path)
    path = _write_qrels(folder, "test", lines or [])
    if lines is None:
        path.write_text("qid\tdocid\trelevance\nq30\td30\t1\n")
    where = f"{path}:{line}:" if line else f"{path}:"
    with pytest.raises(InputError, match=words.replace("(", r"\(")) as caught:
        Collection.load(folder, "test")
    assert where in str(caught.value)
    fails(
        capsys,
        ["evaluate", "--run", str(good["run"]), "--qrels", str(path), "--output", str(tmp_path / "out" / "eval.json")],
        tmp_path / "out",
        where,
        words,
    )


def test_non_utf8_qrels_names_the_line(tmp_path, good):
    folder = copy_of(good["collection"], tmp_path)
    path = folder / "qrels" / "test.tsv"
    path.write_bytes(path.read_bytes() + b"q31\td\xe931\t1\n")
    with pytest.raises(InputError, match=rf"{path}:12: not UTF-8 text \(byte 0xe9 at column 6\)"):
        Collection.load(folder, "test")


def test_test_qrels_naming_absent_documents_warn_and_are_kept(tmp_path, good):
    folder = copy_of(good["collection"], tmp_path)
    path = _write_qrels(folder, "test", ["q30\td30\t1", "q31\tgone1\t1", "q32\tgone2\t2", "q32\td32\t1"])
    with pytest.warns(
        InputWarning, match=rf"{path}: 2 judgement\(s\) name documents absent .*q31/gone1, q32/gone2.*kept"
    ):
        collection = Collection.load(folder, "test")
    assert collection.qrels["q31"] == {"gone1": 1}  # kept: recall counts them, as BEIR and ranx do


def test_training_qrels_naming_absent_documents_are_skipped_with_a_warning(tmp_path, good):
    folder = copy_of(good["collection"], tmp_path)
    lines = [f"q{i}\td{i}\t1" for i in range(30)] + ["q3\tgone\t1", "q29\talso-gone\t1"]
    path = _write_qrels(folder, "train", lines)
    (folder / "qrels" / "valid.tsv").unlink()
    with pytest.warns(InputWarning, match=rf"{path}: 2 judgement\(s\).*skipped"):
        collection = Collection.load(folder, "train", training=True)
    assert collection.qrels["q3"] == {"d3": 1} and "gone" not in str(collection.qrels)
    model, training = load_config(good["config"])
    out = tmp_path / "out"
    with pytest.warns(InputWarning, match="skipped"):
        train_stage(
            folder,
            model,
            training,
            out / "model",
            out / "log.jsonl",
            device="cpu",
            progress=False,
            pooled_queries=good["train_queries"],
            pooled_corpus=good["corpus"],
        )
    assert (out / "model" / "moe.pt").is_file()


def test_qrels_of_another_collection_are_an_error(tmp_path, good):
    folder = copy_of(good["collection"], tmp_path)
    path = _write_qrels(folder, "test", ["q30\tother1\t1", "q31\tother2\t1"])
    with pytest.raises(InputError, match=f"{path}: none of the judged documents is in the corpus"):
        Collection.load(folder, "test")


def test_training_needs_two_queries_and_something_left_to_train_on(tmp_path, good, capsys):
    folder = copy_of(good["collection"], tmp_path)
    shutil.copy(folder / "qrels" / "train.tsv", folder / "qrels" / "valid.tsv")
    out = tmp_path / "out"
    argv = [
        "train",
        "--dataset",
        str(folder),
        "--config",
        str(good["config"]),
        "--output",
        str(out / "model"),
        "--log",
        str(out / "log.jsonl"),
        "--pooled-queries",
        str(good["train_queries"]),
        "--pooled-corpus",
        *map(str, good["corpus"]),
    ]
    fails(capsys, argv, out, f"{folder / 'qrels' / 'valid.tsv'}: holds every query")
    (folder / "qrels" / "valid.tsv").unlink()
    _write_qrels(folder, "train", ["q1\td1\t1"])
    fails(capsys, argv, out, f"{folder / 'qrels' / 'train.tsv'}: one judged query")


# ---- TREC runs ----


@pytest.mark.parametrize(
    "text, line, words",
    [
        (b"q30 Q0 d30 1 1.5 t\nq30 Q0 d\xff 2 1.0 t\n", 2, "not UTF-8"),
        (b"", None, "no results"),
        (b"\n\n", None, "no results"),
        (b"q30 Q0 d30 1 1.5 t\nq30 Q0 d30 2 1.0 t\n", 2, "ranked twice"),
        (b"q30 Q0 d30 1 nan t\n", 1, "is not a number"),
        (b"q30 Q0 d30 first 1.0 t\n", 1, "rank 'first' is not an integer"),
        (b"q30 Q0 d30 1 1.0\n", 1, "expected 6 fields"),
        (b"q1 Q0 d1 1 1.0 t\n", None, "answers none of the 10 judged queries"),
    ],
    ids=[
        "non-utf8",
        "empty",
        "blank-lines",
        "duplicate-document",
        "nan-score",
        "rank-not-integer",
        "five-fields",
        "another-test-set",
    ],
)
def test_bad_run_is_named(tmp_path, good, capsys, text, line, words):
    run = tmp_path / "run.trec"
    run.write_bytes(text)
    where = f"{run}:{line}:" if line else f"{run}:"
    fails(
        capsys,
        [
            "evaluate",
            "--run",
            str(run),
            "--qrels",
            str(good["collection"] / "qrels" / "test.tsv"),
            "--output",
            str(tmp_path / "out" / "eval.json"),
        ],
        tmp_path / "out",
        where,
        words,
    )


def test_nothing_relevant_at_the_threshold(tmp_path, good, capsys):
    qrels = good["collection"] / "qrels" / "test.tsv"
    fails(
        capsys,
        [
            "evaluate",
            "--run",
            str(good["run"]),
            "--qrels",
            str(qrels),
            "--relevance-threshold",
            "2",
            "--output",
            str(tmp_path / "out" / "eval.json"),
        ],
        tmp_path / "out",
        f"{qrels}: no judgement has a grade of at least 2",
    )


def test_run_missing_judged_queries_warns(tmp_path, good, capsys):
    run = tmp_path / "run.trec"
    run.write_text("".join(line + "\n" for line in good["run"].read_text().splitlines() if not line.startswith("q39 ")))
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(run),
                "--qrels",
                str(good["collection"] / "qrels" / "test.tsv"),
                "--output",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert f"sbmoe evaluate: warning: {run}: 1 of the 10 judged queries" in err and "q39" in err
    assert set(json.loads((tmp_path / "eval.json").read_text())["per_query"]["ndcg@10"]) == {
        f"q{i}" for i in range(30, 40)
    }


# ---- encoded texts (.npz) ----


def _rewrite(path: Path, **changes) -> None:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    for name in [name for name, value in arrays.items() if value is None]:
        del arrays[name]
    np.savez(path, **arrays)


def _npz_case(case: str, queries: Path, shard: Path) -> tuple[Path, str]:
    """Break the queries or the first corpus shard; return the broken file and the expected words."""
    with np.load(shard) as data:
        ids, embeddings = data["ids"], data["embeddings"]
    if case == "shard-short-of-ids":
        _rewrite(shard, ids=ids[:-5])
        return shard, "different numbers of texts (ids: 20, embeddings: 25"
    if case == "queries-short-of-ids":
        with np.load(queries) as data:
            _rewrite(queries, ids=data["ids"][:-3])
        return queries, "different numbers of texts (ids: 7, embeddings: 10"
    if case == "truncated":
        shard.write_bytes(shard.read_bytes()[:300])
        return shard, "not an .npz archive (truncated, or another format?)"
    if case == "no-ids":
        _rewrite(shard, ids=None)
        return shard, "has no ids array"
    if case == "wrong-dimension":
        _rewrite(shard, embeddings=np.zeros((len(ids), 16), np.float32))
        return shard, "embeddings have 16 dimensions, those of"
    if case == "nan-embeddings":
        broken = embeddings.copy()
        broken[3, 0] = np.nan
        _rewrite(shard, embeddings=broken)
        return shard, "embeddings of 1 texts are not finite"
    if case == "duplicate-ids":
        _rewrite(shard, ids=np.array([ids[0]] * 2 + list(ids[2:])))
        return shard, "appears twice"
    if case == "not-npz":
        shard.write_text("ids,embeddings\n")
        return shard, "not an .npz archive"
    if case == "single-array":
        with open(shard, "wb") as handle:
            np.save(handle, embeddings)
        return shard, "a single array (.npy), not an .npz"
    if case == "id-with-space":
        _rewrite(shard, ids=np.array(["d 0", *ids[1:]]))
        return shard, "ids must be non-empty and without whitespace"
    raise AssertionError(case)


NPZ_CASES = [
    "shard-short-of-ids",
    "queries-short-of-ids",
    "truncated",
    "no-ids",
    "wrong-dimension",
    "nan-embeddings",
    "duplicate-ids",
    "not-npz",
    "single-array",
    "id-with-space",
]


@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_encoded_file_is_named(tmp_path, good, capsys, case):
    queries = copy_of(good["queries"], tmp_path)
    shards = [copy_of(shard, tmp_path) for shard in good["corpus"]]
    path, words = _npz_case(case, queries, shards[0])
    fails(
        capsys,
        [
            "search",
            "--queries",
            str(queries),
            "--corpus",
            *map(str, shards),
            "--k",
            "10",
            "--output",
            str(tmp_path / "out" / "run.trec"),
        ],
        tmp_path / "out",
        f"{path}: ",
        words,
    )


def test_shards_sharing_ids_and_an_empty_corpus_are_errors(tmp_path, good, capsys):
    out = tmp_path / "out"
    shard = good["corpus"][0]
    fails(
        capsys,
        [
            "search",
            "--queries",
            str(good["queries"]),
            "--corpus",
            str(shard),
            str(shard),
            "--output",
            str(out / "run.trec"),
        ],
        out,
        f"{shard}: id 'd0' is also in an earlier corpus shard",
    )
    empty = tmp_path / "empty.npz"
    Encoded(np.zeros((0, 32), np.float32), np.zeros(0, np.int64), np.zeros((0, 0), np.float32), []).save(empty)
    fails(
        capsys,
        ["search", "--queries", str(good["queries"]), "--corpus", str(empty), "--output", str(out / "run.trec")],
        out,
        f"{empty}: the corpus shards hold no document",
    )
    fails(
        capsys,
        ["search", "--queries", str(empty), "--corpus", str(shard), "--output", str(out / "run.trec")],
        out,
        f"{empty}: holds no queries",
    )


def test_pooled_cache_of_another_model_or_dataset(tmp_path, good, capsys):
    out = tmp_path / "out"
    other = tmp_path / "other.npz"
    Encoded(np.zeros((2, 16), np.float32), np.full(2, -1), np.zeros((2, 0), np.float32), ["q30", "q31"]).save(other)
    fails(
        capsys,
        [
            "encode",
            "--model",
            str(good["block"]),
            "--dataset",
            str(good["collection"]),
            "--kind",
            "queries",
            "--pooled",
            str(other),
            "--output",
            str(out / "q.npz"),
        ],
        out,
        f"{other}: embeddings have 16 dimensions, the model {good['block']} takes 32",
    )
    fails(
        capsys,
        [
            "train",
            "--dataset",
            str(good["collection"]),
            "--config",
            str(good["config"]),
            "--output",
            str(out / "model"),
            "--log",
            str(out / "log.jsonl"),
            "--pooled-queries",
            str(good["queries"]),
            "--pooled-corpus",
            *map(str, good["corpus"]),
        ],
        out,
        f"{good['queries']}: has no embedding of 30 judged queries",
    )


# ---- model folders and encoders ----


@pytest.mark.parametrize(
    "case, file, words",
    [
        ("empty-config", "config.json", "empty file (expected a model configuration in JSON)"),
        ("truncated-config", "config.json", "not valid JSON ("),
        ("unknown-variant", "config.json", "invalid model configuration: variant must be one of"),
        ("no-hidden-size", "config.json", "'hidden_size' must be a positive integer"),
        ("truncated-weights", "moe.pt", "not a readable PyTorch state dict"),
        ("missing-weights", "moe.pt", "missing the weights of the sbmoe-paper-e3 block"),
        (
            "weights-of-more-experts",
            "moe.pt",
            "has extra weights for the sbmoe-paper-e3 block of config.json (experts.3",
        ),
        ("weights-of-another-size", "moe.pt", "(hidden size 32, 3 experts)"),
    ],
    ids=[
        "empty-config",
        "truncated-config",
        "unknown-variant",
        "no-hidden-size",
        "truncated-weights",
        "missing-weights",
        "weights-of-more-experts",
        "weights-of-another-size",
    ],
)
def test_bad_model_folder_is_named(tmp_path, good, capsys, case, file, words):
    model = copy_of(good["block"], tmp_path)
    config = json.loads((model / "config.json").read_text())
    if case == "empty-config":
        (model / "config.json").write_text("")
    elif case == "truncated-config":
        (model / "config.json").write_text((model / "config.json").read_text()[:40])
    elif case == "unknown-variant":
        (model / "config.json").write_text(json.dumps({**config, "variant": "dense-moe"}))
    elif case == "no-hidden-size":
        (model / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "hidden_size"}))
    elif case == "truncated-weights":
        (model / "moe.pt").write_bytes((model / "moe.pt").read_bytes()[:500])
    elif case == "missing-weights":
        (model / "moe.pt").unlink()
    else:
        experts, hidden = (4, 32) if case == "weights-of-more-experts" else (3, 16)
        other = ModelConfig(
            encoder=EncoderConfig(str(good["encoder"])), variant="sbmoe", num_experts=experts, encoder_trained=False
        )
        Retriever(other, hidden_size=hidden).save(tmp_path / "other")
        shutil.copy(tmp_path / "other" / "moe.pt", model / "moe.pt")
    with pytest.raises(InputError):
        Retriever.load(model, with_encoder=False)
    fails(
        capsys,
        [
            "encode",
            "--model",
            str(model),
            "--dataset",
            str(good["collection"]),
            "--kind",
            "queries",
            "--output",
            str(tmp_path / "out" / "q.npz"),
        ],
        tmp_path / "out",
        f"{model / file}",
        words,
    )


def test_missing_model_folder_or_trained_encoder(tmp_path, good, capsys):
    fails(
        capsys,
        [
            "pool",
            "--model",
            str(tmp_path / "nowhere"),
            "--dataset",
            str(good["collection"]),
            "--kind",
            "corpus",
            "--output",
            str(tmp_path / "out" / "c.npz"),
        ],
        tmp_path / "out",
        f"{tmp_path / 'nowhere'}: not a saved model folder",
    )
    model = copy_of(good["base"], tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["encoder_trained"], config["encoder"]["name_or_path"] = True, "encoder"
    (model / "config.json").write_text(json.dumps(config))
    fails(
        capsys,
        [
            "pool",
            "--model",
            str(model),
            "--dataset",
            str(good["collection"]),
            "--kind",
            "corpus",
            "--output",
            str(tmp_path / "out" / "c.npz"),
        ],
        tmp_path / "out",
        f"{model / 'encoder'}: missing the trained encoder's folder",
    )


def test_bad_encoder_folder_is_named(tmp_path, good, capsys):
    encoder = copy_of(good["encoder"], tmp_path)
    weights = next(p for p in encoder.iterdir() if p.name.startswith("model.") or p.name == "pytorch_model.bin")
    weights.write_bytes(weights.read_bytes()[:1000])
    config = yaml.safe_load(good["config"].read_text())
    config["encoder"]["name_or_path"] = str(encoder)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    fails(
        capsys,
        ["init", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "out" / "m")],
        tmp_path / "out",
        f"{encoder}: could not load the encoder from this folder (expected a Hugging Face model",
    )
    (encoder / "config.json").write_text("{")
    fails(
        capsys,
        ["init", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "out" / "m")],
        tmp_path / "out",
        f"{encoder}: could not load the encoder",
    )
    for missing, words in (
        (tmp_path / "no-such-encoder", "local encoder folder does not exist"),
        ("./no/such/encoder", "local encoder folder does not exist"),
        (tmp_path, "not a Hugging Face model folder (config.json missing)"),
        ("embedded:bert-base", "neither a Hugging Face id"),
        ("models/no/such/encoder", "neither a Hugging Face id"),
    ):
        config["encoder"]["name_or_path"] = str(missing)
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        fails(
            capsys,
            ["init", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "out" / "m")],
            tmp_path / "out",
            f"{tmp_path / 'c.yaml'}: 'encoder.name_or_path': '{missing}': {words}",
        )


# ---- command-line arguments ----


def test_bad_arguments_are_usage_errors(tmp_path, good, capsys):
    pool = [
        "pool",
        "--model",
        str(good["base"]),
        "--dataset",
        str(good["collection"]),
        "--kind",
        "corpus",
        "--output",
        str(tmp_path / "c.npz"),
    ]
    usage_error(capsys, [*pool, "--batch-size", "0"], "--batch-size", "expected a positive integer, got 0")
    search = [
        "search",
        "--queries",
        str(good["queries"]),
        "--corpus",
        str(good["corpus"][0]),
        "--output",
        str(tmp_path / "run.trec"),
    ]
    for k in ("0", "-5", "ten"):
        usage_error(capsys, [*search, "--k", k], "--k", "expected a positive integer")
    usage_error(capsys, [*search, "--tag", "my run"], "--tag", "expected one word")
    usage_error(capsys, [*pool, "--shard", "2/2"], "--shard", "shard index must be in [0, 2)")
    evaluate = [
        "evaluate",
        "--run",
        str(good["run"]),
        "--qrels",
        str(good["collection"] / "qrels" / "test.tsv"),
        "--output",
        str(tmp_path / "e.json"),
    ]
    usage_error(capsys, [*evaluate, "--metrics", "ndcg@10", "ndgc@10"], "--metrics", "unknown metric 'ndgc@10'")
    usage_error(capsys, [*evaluate, "--metrics", "recall@0"], "cutoff after '@' must be a positive integer")
    usage_error(capsys, [*evaluate, "--relevance-threshold", "0"], "--relevance-threshold")
    assert listing(tmp_path) == []


# ---- model-and-training configuration (sbmoe train / init) ----


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c["training"].update(seed=7), "unknown key 'training.seed' (the seed is the top-level key 'seed')"),
        (lambda c: c["training"].update(batch_size=1), "training batch_size must be at least 2 (in-batch negatives)"),
        (lambda c: c["training"].update(epochs=0), "training epochs must be at least 1"),
        (lambda c: c["model"].update(num_experts=1), "needs num_experts >= 2"),
    ],
    ids=["training-seed", "batch-size-1", "zero-epochs", "one-expert"],
)
def test_bad_training_configuration_names_the_key(tmp_path, good, capsys, edit, words):
    config = yaml.safe_load(good["config"].read_text())
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)
    fails(
        capsys,
        [
            "train",
            "--dataset",
            str(good["collection"]),
            "--config",
            str(path),
            "--output",
            str(tmp_path / "out" / "model"),
            "--log",
            str(tmp_path / "out" / "log.jsonl"),
        ],
        tmp_path / "out",
        f"{path}: ",
        words,
    )


def test_unreadable_configuration_file(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    for content, words in (
        (b"encoder:\n  name_or_path: [x\nseed: 3\n", f"{path}:3: not valid YAML (expected ',' or ']'"),
        (b"seed: 3\nencoder: {name_or_path: \xe9}\n", f"{path}:2: not UTF-8 text (byte 0xe9 at column 25"),
        (b"", "expected a mapping with sections encoder, model, training"),
    ):
        path.write_bytes(content)
        fails(
            capsys,
            ["init", "--config", str(path), "--output", str(tmp_path / "out" / "m")],
            tmp_path / "out",
            f"{path}",
            words,
        )
    fails(
        capsys,
        ["init", "--config", str(tmp_path / "none.yaml"), "--output", str(tmp_path / "out" / "m")],
        tmp_path / "out",
        f"{tmp_path / 'none.yaml'}: missing file (expected a configuration in YAML or JSON",
    )


def test_validation_split_of_one_query(tmp_path, good):
    folder = copy_of(good["collection"], tmp_path)
    (folder / "qrels" / "valid.tsv").unlink()
    model, _ = load_config(good["config"])
    training = TrainConfig(epochs=1, batch_size=8, train_layers=0, valid_fraction=0.01, seed=3)
    with pytest.raises(ValueError, match="validation split needs at least two queries .* training.valid_fraction"):
        train_stage(
            folder,
            model,
            training,
            tmp_path / "out" / "model",
            tmp_path / "out" / "log.jsonl",
            device="cpu",
            progress=False,
            pooled_queries=good["train_queries"],
            pooled_corpus=good["corpus"],
        )
    assert listing(tmp_path / "out") == []


# ---- the study's configuration: checked before any job starts ----


@pytest.fixture
def study(monkeypatch) -> dict:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SBMOE_DATASET_MIRROR", raising=False)
    return yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())


def checked(config: dict) -> None:
    check_study(config, study_table(config))


@pytest.mark.parametrize(
    "edit, key, words",
    [
        (
            lambda c: c["systems"].append({"variant": "sbmoe", "combination": "learned", "experts": [3, 6]}),
            "systems[5]",
            "system 'sbmoe-learned-e3' is already listed (systems[4])",
        ),
        (lambda c: c["systems"].append({"variant": "finetune"}), "systems[5]", "'finetune' is already listed"),
        (lambda c: c.update(systems=c["systems"][1:]), "systems", "no {variant: finetune} is listed"),
        (
            lambda c: c["evaluation"].update(metrics=["ndcg@10", "ndgc@10"]),
            "evaluation.metrics[1]",
            "unknown metric 'ndgc@10'",
        ),
        (
            lambda c: c["analysis"]["tsne"].update(testset="msmarco"),
            "analysis.tsne.testset",
            "'msmarco' is not a test set of the models trained on 'scifact'",
        ),
        (
            lambda c: c["analysis"]["tsne"].update(system="random-gate-e3", pooling="all"),
            "analysis.tsne.pooling",
            "is read with ['top1']",
        ),
        (lambda c: c["analysis"].update(curves="msmarco"), "analysis.curves", "'msmarco' is not a training set"),
        (
            lambda c: c["encoding"].update(corpus_shards={"default": 1, "scifcat": 2}),
            "encoding.corpus_shards.scifcat",
            "not a dataset of the study",
        ),
        (lambda c: c["datasets"].update(table="workflow/no-such-table.yaml"), "datasets.table", "does not exist"),
        (lambda c: c["datasets"].update(mirror="no/such/folder"), "datasets.mirror", "'no/such/folder' does not exist"),
        (
            lambda c: c["encoders"]["tiny"].update(name_or_path="embedded:bert"),
            "encoders.tiny.name_or_path",
            "neither a Hugging Face id",
        ),
    ],
    ids=[
        "duplicate-system",
        "duplicate-finetune",
        "no-finetune",
        "unknown-metric",
        "tsne-testset",
        "tsne-pooling",
        "curves",
        "corpus-shards",
        "missing-table",
        "missing-mirror",
        "unknown-model-scheme",
    ],
)
def test_bad_study_configuration_names_the_key(study, edit, key, words):
    edit(study)
    with pytest.raises(StudyError) as caught:
        checked(study)
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and words in message, message


def test_study_table_errors_name_the_key_and_the_line(study, tmp_path):
    table = tmp_path / "datasets.yaml"
    table.write_text((ROOT / "workflow" / "datasets.yaml").read_text() + "  broken: [\n")
    study["datasets"]["table"] = str(table)
    with pytest.raises(StudyError, match=rf"^datasets.table: {table}:\d+: not valid YAML"):
        checked(study)
    table.write_text("datasets:\n  scifact: {splits: {test: {ir_datasets: beir/scifact/test}}}\n")
    with pytest.raises(StudyError, match=rf"^datasets.table: {table}: dataset 'scifact': missing field"):
        checked(study)
    table.write_text(
        (ROOT / "workflow" / "datasets.yaml").read_text().replace("relevance_threshold: 2", "relevance_threshold: 0")
    )
    with pytest.raises(StudyError, match="'relevance_threshold' must be a positive integer grade, got 0"):
        checked(study)


def test_missing_mirror_from_the_environment_is_blamed_on_the_variable(study, monkeypatch):
    study["datasets"]["mirror"] = ""
    monkeypatch.setenv("SBMOE_DATASET_MIRROR", "/no/such/mirror")
    with pytest.raises(
        StudyError,
        match=r"^SBMOE_DATASET_MIRROR \(environment variable; datasets.mirror is empty\): "
        r"folder '/no/such/mirror' does not exist",
    ):
        checked(study)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c.update(seeds=[1, 1]), "seeds"),
        (lambda c: c["systems"][2].update(experts=[3, 3]), "experts"),
        (lambda c: c["in_domain"].update(scifact=["scifact", "scifact"]), "in_domain"),
        (lambda c: c["analysis"].pop("tsne"), "tsne"),
        (lambda c: c["training"].update(batch_size=1), "batch_size"),
        (lambda c: c["search"].update(k=0), "k"),
    ],
    ids=["duplicate-seeds", "duplicate-experts", "duplicate-test-set", "no-tsne", "batch-size-1", "k-0"],
)
def test_schema_rejects_and_names_the_key(study, edit, key):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    validate(copy.deepcopy(study), str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    edit(study)
    with pytest.raises(WorkflowError, match=key):
        validate(study, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


# ---- through a subprocess: the message, the exit status, no traceback ----


@pytest.mark.parametrize("case", ["run", "npz"])
def test_command_line_prints_one_error_line_without_traceback(tmp_path, good, case):
    if case == "run":
        bad = tmp_path / "run.trec"
        bad.write_bytes(b"q30 Q0 d30 1 1.0 t\nq31 Q0 d31 1 \xff t\n")
        argv = [
            "evaluate",
            "--run",
            str(bad),
            "--qrels",
            str(good["collection"] / "qrels" / "test.tsv"),
            "--output",
            str(tmp_path / "out" / "eval.json"),
        ]
        expected = f"sbmoe evaluate: error: {bad}:2: not UTF-8 text (byte 0xff at column 14)\n"
    else:
        bad = copy_of(good["corpus"][0], tmp_path)
        bad.write_bytes(bad.read_bytes()[:-200])
        argv = [
            "search",
            "--queries",
            str(good["queries"]),
            "--corpus",
            str(bad),
            "--output",
            str(tmp_path / "out" / "run.trec"),
        ]
        expected = f"sbmoe search: error: {bad}: not an .npz archive (truncated, or another format?)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-m", "sbmoe.pipeline.cli", *argv], capture_output=True, text=True, env=env
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.stderr.strip().splitlines()[-1].startswith(expected.strip()), (
        completed.stderr
    )  # after progress bars
    assert not (tmp_path / "out").exists()


def test_a_pipeline_job_ends_on_bad_input_without_traceback(tmp_path, capsys):
    from sbmoe.pipeline.joblog import log_to

    log = tmp_path / "job.log"
    with pytest.raises(SystemExit) as caught, log_to(log):
        Collection.load(tmp_path / "nowhere")
    assert caught.value.code == 1
    assert f"error: {tmp_path / 'nowhere'}: collection folder does not exist" in capsys.readouterr().err
    assert "collection folder does not exist" in log.read_text() and "Traceback" not in log.read_text()


@pytest.mark.parametrize(
    "index, entry, key",
    [
        (1, {"variant": "regular-moe", "experts": [4], "combination": "learned"}, "combination"),
        (0, {"variant": "finetune", "experts": [3]}, "experts"),
        (0, {"variant": "finetune", "moe_lr": 1e-3}, "moe_lr"),
        (1, {"variant": "adapter", "top_k": 2}, "top_k"),
        (1, {"variant": "random-gate", "experts": [3], "combination": "learned"}, "combination"),
        (1, {"variant": "sbmoe", "experts": [3], "moe_layers": [-1]}, "moe_layers"),
    ],
    ids=[
        "combination-on-regular-moe",
        "experts-on-finetune",
        "moe-lr-on-finetune",
        "top-k-on-adapter",
        "combination-on-random-gate",
        "moe-layers-on-sbmoe",
    ],
)
def test_a_key_the_variant_does_not_take_is_refused_naming_the_entry(study, index, entry, key):
    """A key the entry's variant does not use would leave the system's name (and model) as without it."""
    study["training"]["train_layers"] = 1
    study["systems"] = [{"variant": "finetune"}] * (index > 0) + [entry]
    with pytest.raises(StudyError) as caught:
        checked(study)
    message = str(caught.value)
    expected = f"systems[{index}].{key}: variant {entry['variant']!r} does not take {key!r} (it takes ["
    assert message.startswith(expected), message
    assert "'variant'" in message.partition("(it takes")[2], message
