"""The table of evaluation results (sbmoe.evaluation.results): reading evaluations, gathering them
by their keys, means and standard deviations over seeds, the untrained encoder beside each training
set, and the file helpers the pipeline's scripts use."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from sbmoe.evaluation.results import (
    GROUP_KEYS,
    KEYS,
    aggregate_seeds,
    corpus_files,
    group_by_counts,
    load_results,
    place_untrained,
    pooling_file,
    read_evaluation,
)
from sbmoe.io.errors import DataFormatError


def evaluation(ndcg: float, recall: float, queries=("q1", "q2")) -> dict:
    """An evaluation as the evaluate step writes it (per-query scores whose mean is the metric)."""
    return {
        "metrics": {"ndcg@10": ndcg, "recall@100": recall},
        "per_query": {"ndcg@10": {qid: ndcg for qid in queries}, "recall@100": {qid: recall for qid in queries}},
        "relevance_threshold": 1,
        "num_queries": len(queries),
    }


def write(path, content) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return str(path)


def keys(system, seed, testset="scifact", pooling="none", trainset="scifact", encoder="tiny") -> dict:
    return {
        "encoder": encoder,
        "trainset": trainset,
        "system": system,
        "seed": seed,
        "testset": testset,
        "pooling": pooling,
    }


# ---- one evaluation ----


def test_read_evaluation_single_and_by_test_set_and_pooling(tmp_path):
    single = write(tmp_path / "single.json", evaluation(0.5, 0.8))
    assert read_evaluation(single)["metrics"] == {"ndcg@10": 0.5, "recall@100": 0.8}
    nested = write(
        tmp_path / "model.json",
        {
            "scifact": {"top1": evaluation(0.4, 0.7), "all": evaluation(0.45, 0.75)},
            "cranfield": {"top1": evaluation(0.1, 0.2)},
        },
    )
    assert read_evaluation(nested, "scifact", "all")["metrics"]["ndcg@10"] == 0.45
    assert read_evaluation(nested, "cranfield", "top1")["metrics"]["recall@100"] == 0.2
    with pytest.raises(ValueError, match=r"no evaluation for test set 'cranfield' and pooling 'all'"):
        read_evaluation(nested, "cranfield", "all")


def test_read_evaluation_refuses_what_is_not_an_evaluation(tmp_path):
    listing = write(tmp_path / "list.json", [1, 2])
    with pytest.raises(DataFormatError, match=rf"^{listing}: expected a JSON object"):
        read_evaluation(listing)
    partial = write(tmp_path / "partial.json", {"metrics": {"ndcg@10": 0.3}})
    with pytest.raises(ValueError, match=rf"^{partial}: evaluation JSON lacks \['per_query'\]"):
        read_evaluation(partial)
    broken = tmp_path / "broken.json"
    broken.write_text('{"metrics": \n')
    with pytest.raises(DataFormatError, match=rf"^{broken}:2: not valid JSON"):
        read_evaluation(broken)


# ---- the table ----


@pytest.fixture
def records(tmp_path):
    """Three seeds of FT, two of SB-MoE with two poolings, and the untrained encoder, with random
    metric values; returns the records and the values by (system, pooling)."""
    rng = np.random.default_rng(0)
    values, found = {}, []
    for system, poolings, seeds in (("finetune", ["none"], [1, 2, 3]), ("sbmoe-learned-e3", ["top1", "all"], [1, 2])):
        for seed in seeds:
            by_pooling = {}
            for pooling in poolings:
                ndcg, recall = rng.uniform(size=2)
                by_pooling[pooling] = evaluation(float(ndcg), float(recall))
                values.setdefault((system, pooling), []).append((ndcg, recall))
            path = write(tmp_path / system / str(seed) / "evaluation.json", {"scifact": by_pooling})
            found += [(keys(system, seed, pooling=pooling), path) for pooling in poolings]
    path = write(tmp_path / "zeroshot.json", {"scifact": {"none": evaluation(0.2, 0.6)}})
    found.append((keys("zeroshot", 0, trainset="none"), path))
    values[("zeroshot", "none")] = [(0.2, 0.6)]
    return found, values


def test_load_results_one_row_per_evaluation(records):
    found, values = records
    results = load_results(found)
    assert len(results) == len(found) == 3 + 2 * 2 + 1
    assert {
        *KEYS,
        "variant",
        "combination",
        "num_experts",
        "label",
        "ndcg@10",
        "recall@100",
        "relevance_threshold",
        "num_queries",
        "path",
        "per_query",
    } <= set(results.columns)
    top1 = results[(results["system"] == "sbmoe-learned-e3") & (results["pooling"] == "top1")].sort_values("seed")
    assert top1["ndcg@10"].tolist() == [ndcg for ndcg, _ in values[("sbmoe-learned-e3", "top1")]]
    assert top1["variant"].unique().tolist() == ["sbmoe"] and top1["combination"].unique().tolist() == ["learned"]
    assert top1["num_experts"].unique().tolist() == [3]
    row = results[results["system"] == "zeroshot"].iloc[0]
    assert row["per_query"] == {"ndcg@10": {"q1": 0.2, "q2": 0.2}, "recall@100": {"q1": 0.6, "q2": 0.6}}
    assert row["num_queries"] == 2 and row["relevance_threshold"] == 1


def test_load_results_refuses_duplicates_and_missing_keys(records):
    found, _ = records
    with pytest.raises(ValueError, match="several records share the same keys"):
        load_results(found + found[:1])
    incomplete = {key: value for key, value in found[0][0].items() if key != "seed"}
    with pytest.raises(ValueError, match=r"keys lack \['seed'\]"):
        load_results([(incomplete, found[0][1])])
    empty = load_results([])
    assert empty.empty and set(KEYS) <= set(empty.columns)


def test_aggregate_seeds_is_the_mean_and_sample_std_of_each_group(records):
    found, values = records
    summary = aggregate_seeds(load_results(found), ["ndcg@10", "recall@100"])
    assert len(summary) == len(values)
    for (system, pooling), scores in values.items():
        row = summary[(summary["system"] == system) & (summary["pooling"] == pooling)]
        assert len(row) == 1
        row = row.iloc[0]
        scores = np.array(scores)
        assert row["seeds"] == len(scores)
        for column, metric in enumerate(["ndcg@10", "recall@100"]):
            assert row[metric] == pytest.approx(np.mean(scores[:, column]), abs=1e-12)
            expected_std = np.std(scores[:, column], ddof=1) if len(scores) > 1 else 0.0
            assert row[f"{metric}_std"] == pytest.approx(expected_std, abs=1e-12)
    assert list(summary.columns[: len(GROUP_KEYS)]) == list(GROUP_KEYS)


def test_aggregate_seeds_skips_missing_values_and_unknown_metrics():
    rows = [
        {
            "encoder": "e",
            "trainset": "t",
            "system": "finetune",
            "pooling": "none",
            "testset": "s",
            "seed": seed,
            "variant": "finetune",
            "combination": None,
            "num_experts": None,
            "label": "FT",
            "ndcg@10": value,
        }
        for seed, value in ((1, 0.2), (2, math.nan), (3, 0.6))
    ]
    summary = aggregate_seeds(pd.DataFrame(rows), ["ndcg@10", "map@100"])
    row = summary.iloc[0]
    assert row["seeds"] == 3
    assert row["ndcg@10"] == pytest.approx(0.4) and row["ndcg@10_std"] == pytest.approx(np.std([0.2, 0.6], ddof=1))
    assert math.isnan(row["map@100"]) and math.isnan(row["map@100_std"])


def test_place_untrained_repeats_the_zero_shot_rows_under_each_training_set():
    frame = pd.DataFrame(
        [
            {"system": "finetune", "variant": "finetune", "trainset": "msmarco", "ndcg@10": 0.3},
            {"system": "zeroshot", "variant": "zeroshot", "trainset": "none", "ndcg@10": 0.1},
            {"system": "finetune", "variant": "finetune", "trainset": "nq", "ndcg@10": 0.4},
            {"system": "finetune", "variant": "finetune", "trainset": "msmarco", "ndcg@10": 0.35},
        ]
    )
    placed = place_untrained(frame)
    assert placed[["system", "trainset", "ndcg@10"]].values.tolist() == [
        ["finetune", "msmarco", 0.3],
        ["finetune", "nq", 0.4],
        ["finetune", "msmarco", 0.35],
        ["zeroshot", "msmarco", 0.1],
        ["zeroshot", "nq", 0.1],
    ]
    chosen = place_untrained(frame, ["scifact"])
    assert chosen.loc[chosen["system"] == "zeroshot", "trainset"].tolist() == ["scifact"]
    trained_only = frame[frame["variant"] != "zeroshot"]
    assert place_untrained(trained_only) is trained_only


# ---- files of the pipeline ----


def test_pooling_file_and_corpus_files_in_shard_order(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    assert pooling_file(model, "top1", ".trec") == model / "top1.trec"
    assert pooling_file(tmp_path / "run.trec", "top1", ".trec") == tmp_path / "run.trec"
    search = tmp_path / "search"
    for shard in ("10", "2", "0", "notes"):
        (search / shard).mkdir(parents=True)
    single = tmp_path / "single.npz"
    assert corpus_files([search, model, single], "all") == [
        search / "0" / "all.npz",
        search / "2" / "all.npz",
        search / "10" / "all.npz",  # numbered shards in numeric order, other folders ignored
        model / "all.npz",
        single,
    ]


def test_group_by_counts():
    assert group_by_counts(["a", "b", "c", "d", "e"], [2, 0, 3]) == [["a", "b"], [], ["c", "d", "e"]]
    assert group_by_counts(["a", "b"], None) == [["a"], ["b"]]
    with pytest.raises(ValueError, match=r"3 items cannot be split into groups of \[1, 1\]"):
        group_by_counts(["a", "b", "c"], [1, 1])
