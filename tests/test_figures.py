"""The paper's figures, drawn from synthetic evaluations, runs, encoded texts and training logs."""

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sbmoe.analysis.figures.expert_count import expert_count_figure
from sbmoe.analysis.figures.training import moe_layer_series, read_training_log, training_curves_figure
from sbmoe.analysis.figures.tsne import TsnePanel, choose_query, load_encoded, ranked_run, tsne_figure
from sbmoe.evaluation.results import REPORTED_METRICS, load_results
from sbmoe.io.collection import write_qrels
from test_tables import IN_DOMAIN, synthetic_records, write_routing

DOCUMENTS = 300
QUERY_IDS = [f"q{i}" for i in range(6)]


def _assert_written(pdf, png):
    assert Path(pdf).is_file() and Path(pdf).read_bytes().startswith(b"%PDF")
    assert Path(png).is_file() and Path(png).stat().st_size > 1000


def write_run(path, ranking, tag="synthetic"):
    """A TREC run file from ``{qid: [doc ids in rank order]}``."""
    lines = [
        f"{qid} Q0 {doc} {rank} {100 - rank / 10:.3f} {tag}"
        for qid, docs in ranking.items()
        for rank, doc in enumerate(docs, 1)
    ]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def synthetic_tsne_inputs(folder, depth=120):
    """Panels (FT without gate, SB-MoE with 4 experts) and qrels on a synthetic collection."""
    folder = Path(folder)
    rng = np.random.default_rng(0)
    documents = [f"d{i}" for i in range(DOCUMENTS)]
    qrels = {qid: {documents[7 * i]: 1, documents[7 * i + 1]: 2} for i, qid in enumerate(QUERY_IDS)}
    qrels["q5"] = {"not-retrieved": 1}
    write_qrels(folder / "qrels.tsv", qrels)
    panels = []
    for name, experts in (("FT", 0), ("SB-MoE TOP-1 E=4", 4)):
        ranking = {qid: list(rng.permutation(documents)[:depth]) for qid in QUERY_IDS}
        for i, qid in enumerate(QUERY_IDS[:5]):
            ranking[qid] = [documents[7 * i]] + [d for d in ranking[qid] if d != documents[7 * i]][: depth - 1]
        ranking["q5"] = [d for d in ranking["q5"]]
        tag = name.split()[0]
        run = write_run(folder / f"{tag}.run", ranking)
        doc_experts = rng.integers(0, experts, DOCUMENTS) if experts else -np.ones(DOCUMENTS, dtype=int)
        query_experts = rng.integers(0, experts, len(QUERY_IDS)) if experts else -np.ones(len(QUERY_IDS), dtype=int)
        half = DOCUMENTS // 2  # the corpus in two shards, as the pipeline encodes it
        corpus = [
            write_routing(folder / f"{tag}-corpus-0.npz", documents[:half], doc_experts[:half], experts),
            write_routing(folder / f"{tag}-corpus-1.npz", documents[half:], doc_experts[half:], experts),
        ]
        queries = write_routing(folder / f"{tag}-queries.npz", QUERY_IDS, query_experts, experts)
        panels.append(TsnePanel(name, run, queries, corpus))
    return panels, qrels


def write_training_logs(folder, epochs=6):
    """Training logs of FT, RANDOM-GATE and SB-MoE with the paper's and the learned combination."""
    folder = Path(folder)
    rng = np.random.default_rng(0)
    logs = []
    for system, pooling in (
        ("finetune", "none"),
        ("random-gate-e4", "top1"),
        ("sbmoe-paper-e4", "top1"),
        ("sbmoe-learned-e4", "top1"),
    ):
        gated = system != "finetune"
        # The pipeline logs the untrained model as epoch 0, without losses.
        lines = [dict.fromkeys(["loss", "val_loss", "gate_grad_norm", "routing_entropy", "expert_load"])]
        lines[0].update(epoch=0, seconds=0.0, best=True)
        for epoch in range(1, epochs + 1):
            load = rng.dirichlet(np.ones(4)).tolist() if gated else None
            lines.append(
                {
                    "epoch": epoch,
                    "loss": 2.0 / epoch + rng.uniform(0, 0.05),
                    "val_loss": 2.2 / epoch + rng.uniform(0, 0.05),
                    "gate_grad_norm": {"sbmoe-paper-e4": 0.0, "sbmoe-learned-e4": 0.01 / epoch}.get(system),
                    "routing_entropy": float(-np.sum(np.array(load) * np.log(load))) if gated else None,
                    "expert_load": load,
                    "seconds": 10.0,
                    "best": epoch == epochs - 1,
                }
            )
        path = folder / f"{system}.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        keys = dict(encoder="tiny", trainset="msmarco", system=system, seed=1, pooling=pooling)
        logs.append((keys, path))
    return logs


def test_expert_count_figure(tmp_path):
    results = load_results(synthetic_records(tmp_path / "evals", seeds=(1, 2)))
    plotted = expert_count_figure(
        results,
        IN_DOMAIN,
        tmp_path / "experts.pdf",
        tmp_path / "experts.png",
        metrics=REPORTED_METRICS,
        dataset_labels={"msmarco": "MS MARCO"},
    )
    _assert_written(tmp_path / "experts.pdf", tmp_path / "experts.png")
    configurations = {bar["configuration"] for bar in plotted["bars"]}
    assert configurations == {"FT", "E=3", "E=6"}
    assert all(bar["std"] > 0 for bar in plotted["bars"])


def test_ranked_run_and_load_encoded(tmp_path):
    run = ranked_run(write_run(tmp_path / "r.run", {"q1": ["a", "b", "c"], "q2": ["c"]}), depth=2)
    assert run == {"q1": ["a", "b"], "q2": ["c"]}
    path = write_routing(tmp_path / "c.npz", ["a", "b", "c"], [2, 0, 1], 3)
    embeddings, experts = load_encoded(path, ["c", "a"])
    with np.load(path) as encoded:
        np.testing.assert_array_equal(embeddings, encoded["embeddings"][[2, 0]])
    assert experts.tolist() == [1, 2]
    compressed = tmp_path / "z.npz"
    with np.load(path) as encoded:
        np.savez_compressed(compressed, **encoded)
    np.testing.assert_array_equal(load_encoded(compressed, ["c", "a"])[0], embeddings)
    with pytest.raises(KeyError):
        load_encoded(path, ["missing"])
    other = write_routing(tmp_path / "d.npz", ["x", "y"], [0, 2], 3)
    sharded, sharded_experts = load_encoded([path, other], ["y", "a"])
    with np.load(other) as encoded:
        np.testing.assert_array_equal(sharded[0], encoded["embeddings"][1])
    assert sharded_experts.tolist() == [2, 2]


def test_choose_query_is_seeded_and_needs_relevant_in_every_run():
    runs = [{"q1": ["a"], "q2": ["b"], "q3": ["c"]}, {"q1": ["a"], "q2": ["x"], "q3": ["c"]}]
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    choices = {choose_query(runs, qrels, seed)[0] for seed in range(20)}
    assert choices == {"q1", "q3"}
    assert choose_query(runs, qrels, 5) == choose_query(runs, qrels, 5)
    with pytest.raises(ValueError):
        choose_query(runs, {"q2": {"b": 1}}, 0)


@pytest.fixture
def one_openmp_thread():
    """t-SNE on a hundred points is slower with OpenMP threads competing on a busy test machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_tsne_figure(tmp_path, one_openmp_thread):
    panels, qrels = synthetic_tsne_inputs(tmp_path)
    description = tsne_figure(panels, qrels, tmp_path / "tsne.pdf", tmp_path / "tsne.png", seed=3, depth=100)
    _assert_written(tmp_path / "tsne.pdf", tmp_path / "tsne.png")
    assert description["qid"] in QUERY_IDS[:5] and description["candidates"] == 5
    assert [panel["documents"] for panel in description["panels"]] == [100, 100]
    assert description["panels"][0]["query_expert"] is None and description["panels"][0]["experts_used"] == []
    assert description["panels"][1]["relevant_retrieved"] >= 1
    assert set(description["panels"][1]["experts_used"]) <= {1, 2, 3, 4}
    again = tsne_figure(panels, qrels, tmp_path / "again.pdf", tmp_path / "again.png", seed=3, depth=100)
    assert again == description


def test_training_curves_figure(tmp_path):
    logs = write_training_logs(tmp_path)
    described = training_curves_figure(
        [(k["system"], path) for k, path in logs], tmp_path / "t.pdf", tmp_path / "t.png"
    )
    _assert_written(tmp_path / "t.pdf", tmp_path / "t.png")
    assert [system["epochs"] for system in described["systems"]] == [6, 6, 6, 6]
    assert described["systems"][0]["best_epoch"] == 5


def test_training_curves_show_each_regular_moe_layer(tmp_path):
    log = tmp_path / "regular.jsonl"
    entries = [
        {
            "epoch": epoch,
            "loss": 2.0 / epoch,
            "val_loss": 2.1 / epoch,
            "gate_grad_norm": None,
            "routing_entropy": None,
            "expert_load": None,
            "seconds": 1.0,
            "best": True,
            "layer_routing": {
                "4": {"expert_load": [0.5, 0.3, 0.2], "routing_entropy": 1.0, "balance_loss": 1.1},
                "5": {"expert_load": [0.4, 0.4, 0.2], "routing_entropy": 1.05, "balance_loss": 1.02},
            },
        }
        for epoch in (1, 2)
    ]
    log.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    series = moe_layer_series("Regular MoE E=3 k=2", read_training_log(log))
    assert [label for label, _ in series] == ["Regular MoE E=3 k=2, layer 4", "Regular MoE E=3 k=2, layer 5"]
    assert series[1][1]["routing_entropy"].tolist() == [1.05, 1.05]
    described = training_curves_figure([("Regular MoE E=3 k=2", log)], tmp_path / "r.pdf", tmp_path / "r.png")
    _assert_written(tmp_path / "r.pdf", tmp_path / "r.png")
    assert [system["label"] for system in described["systems"]] == ["Regular MoE E=3 k=2"]
