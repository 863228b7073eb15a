"""The command line end to end on a slice of SciFact with a tiny random encoder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
import yaml

from sbmoe.io.encoded import Encoded
from sbmoe.io.runs import read_trec_run
from sbmoe.pipeline.cli import main

MINI = Path(__file__).resolve().parent / "data" / "mini" / "scifact"
CONFIG = {
    "encoder": {"name_or_path": "random:tiny-bert", "normalize": True, "query_max_length": 32, "doc_max_length": 64},
    "model": {"variant": "sbmoe", "num_experts": 3, "combination": "learned"},
    "training": {"epochs": 2, "batch_size": 16, "temperature": 0.05, "train_layers": 0},
    "seed": 3,
}


@pytest.mark.parametrize("command", ["train", "init", "pool", "encode", "search", "evaluate"])
def test_help(command):
    completed = subprocess.run(
        [sys.executable, "-m", "sbmoe.pipeline.cli", command, "--help"], capture_output=True, text=True
    )
    assert completed.returncode == 0 and "--output" in completed.stdout


def test_cli_pipeline(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    base = {**CONFIG, "model": {"variant": "finetune"}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    assert main(["init", "--config", str(tmp_path / "base.yaml"), "--output", str(tmp_path / "base")]) == 0
    for kind, split in (("queries", "train"), ("corpus", "test")):
        assert (
            main(
                [
                    "pool",
                    "--model",
                    str(tmp_path / "base"),
                    "--dataset",
                    str(MINI),
                    "--kind",
                    kind,
                    "--split",
                    split,
                    "--output",
                    str(tmp_path / f"pooled-{kind}.npz"),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "train",
                "--dataset",
                str(MINI),
                "--config",
                str(config),
                "--output",
                str(tmp_path / "model"),
                "--log",
                str(tmp_path / "log.jsonl"),
                "--valid-split",
                "none",
                "--pooled-queries",
                str(tmp_path / "pooled-queries.npz"),
                "--pooled-corpus",
                str(tmp_path / "pooled-corpus.npz"),
            ]
        )
        == 0
    )
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 2
    for kind in ("queries", "corpus"):
        assert (
            main(
                [
                    "encode",
                    "--model",
                    str(tmp_path / "model"),
                    "--dataset",
                    str(MINI),
                    "--kind",
                    kind,
                    "--pooling",
                    "all",
                    "--output",
                    str(tmp_path / f"{kind}.npz"),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "search",
                "--queries",
                str(tmp_path / "queries.npz"),
                "--corpus",
                str(tmp_path / "corpus.npz"),
                "--k",
                "50",
                "--output",
                str(tmp_path / "run.trec"),
            ]
        )
        == 0
    )
    run = read_trec_run(tmp_path / "run.trec")
    assert len(run) == 40 and all(len(docs) == 50 for docs in run.values())
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(tmp_path / "run.trec"),
                "--qrels",
                str(MINI / "qrels" / "test.tsv"),
                "--output",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "map@100", "precision@1", "ndcg@3"}
    assert len(result["per_query"]["ndcg@10"]) == 40


def test_cli_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "run.trec"
    bad.write_text("1 Q0 d1 1\n")
    code = main(
        [
            "evaluate",
            "--run",
            str(bad),
            "--qrels",
            str(MINI / "qrels" / "test.tsv"),
            "--output",
            str(tmp_path / "eval.json"),
        ]
    )
    assert code == 2
    assert f"{bad}:1" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def test_cli_report_is_trec_eval_on_the_written_run(tmp_path):
    """Two identical documents (the one trec_eval ranks second is relevant) and two documents whose
    scores differ by 4e-7, less than a sixth decimal shows (the higher one relevant): the report of
    'sbmoe evaluate' is trec_eval's on the file 'sbmoe search' wrote, query by query."""

    def encoded(ids, vectors):
        return Encoded(
            embeddings=np.asarray(vectors, dtype=np.float32),
            experts=np.full(len(ids), -1),
            gate=np.zeros((len(ids), 0), dtype=np.float32),
            ids=ids,
        )

    high, low = np.float32(0.2500004), np.float32(0.25)
    assert 3.5e-7 < high - low < 4.5e-7 and f"{high:.6f}" == f"{low:.6f}"
    encoded(["dup", "near"], [[1, 0], [0, 1]]).save(tmp_path / "queries.npz")
    encoded(
        ["twin-a", "twin-b", "near-a", "near-b", "other"], [[0.5, 0], [0.5, 0], [0, high], [0, low], [0.1, 0.1]]
    ).save(tmp_path / "corpus.npz")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\ndup\ttwin-a\t1\nnear\tnear-a\t1\n")
    assert (
        main(
            [
                "search",
                "--queries",
                str(tmp_path / "queries.npz"),
                "--corpus",
                str(tmp_path / "corpus.npz"),
                "--output",
                str(tmp_path / "run.trec"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(tmp_path / "run.trec"),
                "--qrels",
                str(tmp_path / "qrels.tsv"),
                "--output",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval.json").read_text())["per_query"]

    lines = [line.split() for line in (tmp_path / "run.trec").read_text().splitlines()]
    assert [fields[2] for fields in lines[:2]] == ["twin-b", "twin-a"]  # equal scores: ids descending
    assert [fields[2] for fields in lines[5:7]] == ["near-a", "near-b"] and lines[5][4] != lines[6][4]
    run = {}
    for qid, _, doc, _, score, _ in lines:
        run.setdefault(qid, {})[doc] = float(score)
    trec_eval = pytrec_eval.RelevanceEvaluator(
        {"dup": {"twin-a": 1}, "near": {"near-a": 1}},
        {"ndcg_cut.3,10", "recall.100", "map_cut.100", "P.1", "recip_rank"},
    )
    expected = trec_eval.evaluate(run)
    names = {
        "ndcg@10": "ndcg_cut_10",
        "ndcg@3": "ndcg_cut_3",
        "recall@100": "recall_100",
        "map@100": "map_cut_100",
        "precision@1": "P_1",
        "mrr@10": "recip_rank",
    }  # every rank here is within 10
    for metric, measure in names.items():
        assert report[metric] == pytest.approx({q: expected[q][measure] for q in ("dup", "near")}, abs=1e-12), metric
    assert report["precision@1"] == {"dup": 0.0, "near": 1.0} and report["mrr@10"] == {"dup": 0.5, "near": 1.0}
