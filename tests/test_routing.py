"""Routing over whole retrievers: the gate, hard and soft routing, fusion, the oracle, and the stages."""

import json
from pathlib import Path

import numpy as np
import pytest

from sbmoe.evaluation.metrics import evaluate
from sbmoe.evaluation.results import REPORTED_METRICS
from sbmoe.io.encoded import Encoded
from sbmoe.io.runs import write_trec_run
from sbmoe.retrieval.fusion import align, fuse, min_max, per_query_fusion, top_k, tune_wsum, weighted_sum
from sbmoe.selection.comparison import best_single, choice_shares, significance_against_best_single
from sbmoe.selection.experts import (
    ROUTED,
    best_experts,
    hard_routing,
    oracle_choices,
    query_features,
    routed_runs,
    soft_routing,
    utilities,
)
from sbmoe.selection.router import Router, RouterConfig, train_router
from sbmoe.selection.routing import ExpertInputs, route_stage, train_router_stage
from sbmoe.systems.labels import expert_label
from sbmoe.systems.names import parse_expert

ROOT = Path(__file__).resolve().parents[1]
EXPERTS = ["bm25", "zeroshot", "sbmoe-learned-e3/top1"]


def random_runs(seed=0, queries=30, docs=60, depth=20, experts=3):
    """Runs of ``experts`` retrievers over the same queries, and qrels: distinct random scores."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(queries)]
    runs = []
    for _ in range(experts):
        run = {}
        for qid in qids:
            chosen = rng.choice(docs, size=depth, replace=False)
            run[qid] = {f"d{d}": float(s) for d, s in zip(chosen, rng.normal(size=depth))}
        runs.append(run)
    qrels = {qid: {f"d{d}": int(rng.integers(1, 3)) for d in rng.choice(docs, size=3, replace=False)} for qid in qids}
    return qids, runs, qrels


def ranked(ranking):
    return [doc for doc, _ in sorted(ranking.items(), key=lambda item: (-item[1], item[0]))]


def assert_valid_trec(path, k):
    """Scores sorted, ranks 1..n, no duplicate document, at most k per query."""
    seen = {}
    for line in path.read_text().splitlines():
        qid, q0, doc, rank, score, _ = line.split()
        docs = seen.setdefault(qid, [])
        assert q0 == "Q0" and int(rank) == len(docs) + 1 and doc not in [d for d, _ in docs]
        assert not docs or np.float32(score) <= np.float32(docs[-1][1])  # trec_eval compares scores as float32
        docs.append((doc, float(score)))
    assert all(len(docs) <= k for docs in seen.values())
    return seen


# ---- experts and features ----


def test_expert_names():
    assert parse_expert("bm25") == ("bm25", None)
    assert parse_expert("zeroshot") == ("zeroshot", "none")
    assert parse_expert("sbmoe-learned-e6") == ("sbmoe-learned-e6", "top1")
    assert parse_expert("sbmoe-paper-e3/all") == ("sbmoe-paper-e3", "all")
    assert expert_label("sbmoe-learned-e6/all") == "SB-MoE ALL E=6 (learned gate)"
    assert expert_label("bm25") == "BM25"
    with pytest.raises(ValueError, match="pooling"):
        parse_expert("finetune/top1")
    with pytest.raises(ValueError, match="not a system name"):
        parse_expert("colbert")


def test_query_features():
    bm25 = {"a": {"d1": 3.0, "d2": 1.0}, "b": {}}
    features = query_features(["one two three", "x"], ["length", "bm25"], bm25, ["a", "b"])
    np.testing.assert_allclose(features[0], [np.log(4), 3.0, 2.0, 1.0])
    np.testing.assert_allclose(features[1], [np.log(2), 0, 0, 0])
    assert query_features(["a"], []).shape == (1, 0)
    with pytest.raises(ValueError, match="BM25 run"):
        query_features(["a"], ["bm25"])
    with pytest.raises(ValueError, match="unknown query features"):
        RouterConfig(features=["idf"])


# ---- the gate ----


def test_router_learns_the_expert_that_is_always_best():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(40, 8))
    utility = rng.uniform(0, 0.5, size=(40, 3))
    utility[:, 2] = utility.max(axis=1) + rng.uniform(0.01, 0.3, size=40)  # expert 2 always best
    config = RouterConfig(features=[], l2=[0.01, 1.0], epochs=200)
    router, log = train_router(EXPERTS, embeddings, np.zeros((40, 0)), utility, config, progress=False)
    epochs = log["epochs"]
    assert epochs[-1]["accuracy"] == 1.0 and epochs[-1]["loss"] < epochs[0]["loss"]
    assert set(log["cross_validation"]) == {"0.01", "1.0"}
    assert log["l2"] == 1.0  # every penalty routes every held-out query to expert 2: the strongest is kept
    unseen = rng.normal(size=(100, 8))
    assert (router.choose(unseen, np.zeros((100, 0))) == 2).all()


def test_router_reads_the_query():
    """The best expert depends on the query embedding: the gate must learn that, not a prior."""
    rng = np.random.default_rng(2)

    def case(n):
        embeddings = rng.normal(size=(n, 6))
        utility = np.zeros((n, 2))
        utility[np.arange(n), (embeddings[:, 0] > 0).astype(int)] = 1.0
        return embeddings, utility

    embeddings, utility = case(200)
    config = RouterConfig(features=[], hidden=16, epochs=300, l2=[0.0])
    router, _ = train_router(EXPERTS[:2], embeddings, np.zeros((200, 0)), utility, config, progress=False)
    test, truth = case(200)
    accuracy = (router.choose(test, np.zeros((200, 0))) == truth.argmax(axis=1)).mean()
    assert accuracy > 0.9


def test_cross_validation_keeps_a_gate_from_fitting_noise():
    """40 queries whose best expert has nothing to do with the embedding, expert 0 best on 70% of them:
    cross-validation picks a penalty strong enough that every unseen query goes to expert 0."""
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(40, 30))
    utility = np.zeros((40, 2))
    utility[np.arange(40), (rng.uniform(size=40) < 0.3).astype(int)] = 1.0
    config = RouterConfig(features=[], l2=[0.0001, 1.0])
    router, log = train_router(EXPERTS[:2], embeddings, np.zeros((40, 0)), utility, config, progress=False)
    assert log["l2"] == 1.0 and log["cross_validation"]["1.0"] >= log["cross_validation"]["0.0001"]
    assert (router.choose(rng.normal(size=(200, 30)), np.zeros((200, 0))) == 0).all()
    unregularised, _ = train_router(
        EXPERTS[:2], embeddings, np.zeros((40, 0)), utility, RouterConfig(features=[], l2=[0.0]), progress=False
    )
    assert (unregularised.choose(rng.normal(size=(200, 30)), np.zeros((200, 0))) == 1).any()


def test_router_is_deterministic_and_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    embeddings, features, utility = rng.normal(size=(30, 5)), rng.normal(size=(30, 4)), rng.uniform(size=(30, 3))
    config = RouterConfig(hidden=8, epochs=50, seed=7)
    first, _ = train_router(EXPERTS, embeddings, features, utility, config, progress=False)
    second, _ = train_router(EXPERTS, embeddings, features, utility, config, progress=False)
    np.testing.assert_array_equal(first.weights(embeddings, features), second.weights(embeddings, features))
    first.save(tmp_path / "router", {"note": 1})
    loaded = Router.load(tmp_path / "router")
    assert loaded.experts == EXPERTS and loaded.config == config
    np.testing.assert_allclose(loaded.weights(embeddings, features), first.weights(embeddings, features), rtol=1e-6)
    weights = loaded.weights(embeddings, features)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="features per query"):
        loaded.weights(embeddings, features[:, :2])


def test_router_refuses_training_data_without_signal():
    with pytest.raises(ValueError, match="tells the experts apart"):
        train_router(EXPERTS, np.ones((5, 3)), np.zeros((5, 0)), np.full((5, 3), 0.4), RouterConfig(features=[]))
    with pytest.raises(ValueError, match="bm25 among the experts"):
        Router(["zeroshot", "finetune"], 4, RouterConfig(features=["bm25"]))


def test_best_experts_share_ties():
    np.testing.assert_allclose(
        best_experts(np.array([[0.2, 0.5, 0.5], [0.0, 0.0, 0.0]])), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]
    )


# ---- routing, fusion and the oracle ----


def test_soft_routing_with_one_hot_weights_is_hard_routing():
    qids, runs, _ = random_runs()
    choices = np.random.default_rng(4).integers(0, 3, size=len(qids))
    hard = hard_routing(runs, qids, choices)
    soft = soft_routing(runs, qids, np.eye(3)[choices], k=1000)
    for qid in qids:
        assert ranked(soft[qid]) == ranked(hard[qid])
    assert evaluate(soft, random_runs()[2])["metrics"] == evaluate(hard, random_runs()[2])["metrics"]


def test_soft_routing_with_fixed_weights_is_ranx_wsum():
    qids, runs, _ = random_runs(seed=5)
    weights = [0.2, 0.5, 0.3]
    ours = per_query_fusion(runs, {qid: weights for qid in qids}, k=1000)
    theirs = fuse(runs, "wsum", weights, k=1000)
    for qid in qids:
        assert ours[qid].keys() == theirs[qid].keys()
        for doc in ours[qid]:
            assert ours[qid][doc] == pytest.approx(theirs[qid][doc], abs=1e-9)


def test_rrf_and_top_k_break_ties_in_trec_eval_order():
    tied = [{"q": {"a": 1.0, "b": 1.0, "c": 0.5}}, {"q": {"c": 1.0, "b": 0.2, "a": 0.2}}]
    # ranks in trec_eval's order (equal scores by document id descending): b, a, c and c, b, a
    expected = {"b": 1 / 61 + 1 / 62, "a": 1 / 62 + 1 / 63, "c": 1 / 63 + 1 / 61}
    assert fuse(tied, "rrf")["q"] == pytest.approx(expected, abs=1e-15)
    assert list(top_k({"a": 1.0, "b": 1.0, "c": 2.0}, 2)) == ["c", "b"]
    assert list(hard_routing(tied, ["q"], [1], k=2)["q"]) == ["c", "b"]


def test_min_max_and_weighted_sum():
    assert min_max({"a": 3.0, "b": 1.0, "c": 2.0}) == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert min_max({"a": 2.0}) == {"a": 0.0}  # ranx: (s - min) / max(max - min, 1e-9)
    assert min_max({}) == {}
    fused = weighted_sum([{"a": 1.0, "b": 0.0}, {"b": 1.0, "c": 0.0}], [0.25, 0.75], k=2)
    assert fused == {"b": 0.75, "a": 0.25}
    with pytest.raises(ValueError, match="non-negative"):
        weighted_sum([{"a": 1.0}], [-1.0])


def test_oracle_is_never_below_a_single_retriever():
    qids, runs, qrels = random_runs(seed=6, queries=50)
    utility = utilities(runs, qrels, qids)
    oracle = hard_routing(runs, qids, oracle_choices(utility))
    scored = evaluate(oracle, qrels, ["ndcg@10"])
    for column, run in enumerate(runs):
        single = evaluate(run, qrels, ["ndcg@10"])
        assert scored["metrics"]["ndcg@10"] >= single["metrics"]["ndcg@10"]
        for qid in qids:
            assert scored["per_query"]["ndcg@10"][qid] >= single["per_query"]["ndcg@10"][qid] - 1e-12
            assert single["per_query"]["ndcg@10"][qid] == pytest.approx(utility[qids.index(qid), column])


def test_fusion_and_routing_write_valid_runs(tmp_path):
    qids, runs, qrels = random_runs(seed=7)
    runs[1]["q3"] = {}  # an expert that found nothing for one query
    weights = np.random.default_rng(8).dirichlet(np.ones(3), size=len(qids))
    systems = routed_runs(runs, qids, weights, utilities(runs, qrels, qids), [0.3, 0.3, 0.4], k=25)
    assert set(systems) == set(ROUTED)
    for name, run in systems.items():
        assert list(run) == qids
        write_trec_run(tmp_path / f"{name}.trec", run, name)
        assert assert_valid_trec(tmp_path / f"{name}.trec", k=25)
    assert len(systems["rrf"]["q0"]) == 25  # the union of three 20-document rankings, cut at k


def test_tune_wsum_prefers_the_run_that_finds_the_relevant_documents():
    qids, runs, qrels = random_runs(seed=9)
    perfect = {qid: {doc: 10.0 + grade for doc, grade in docs.items()} for qid, docs in qrels.items()}
    weights = tune_wsum([runs[0], perfect], qrels)
    assert len(weights) == 2 and weights[1] > weights[0] and sum(weights) == pytest.approx(1.0)
    assert tune_wsum([runs[0], perfect], qrels) == weights
    coarse = tune_wsum([runs[0], perfect], qrels, step=0.5)  # routing.wsum_step: the grid 0, 0.5, 1
    assert coarse[1] > coarse[0] and set(coarse) <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="same queries"):
        fuse([runs[0], {"q0": {}}], "rrf")
    aligned = align([{"q1": {"d": 1.0}}], ["q0", "q1"])
    assert aligned == [{"q0": {}, "q1": {"d": 1.0}}]


# ---- stages and analysis ----


def write_split(folder, qids, runs, names, seed):
    """Runs of each expert and a pooled query npz for one split of the tiny collection."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, run in zip(names, runs):
        path = folder / f"{name.replace('/', '-')}.trec"
        write_trec_run(path, run, name)
        paths.append(path)
    rng = np.random.default_rng(seed)
    pooled = folder / "queries.npz"
    Encoded(
        rng.normal(size=(len(qids), 8)).astype(np.float32), np.full(len(qids), -1), np.zeros((len(qids), 0)), list(qids)
    ).save(pooled)
    return paths, pooled


def tiny_runs(collection, split, good):
    """Three experts on a split of the tiny collection: expert ``good`` ranks each query's document
    first, the others rank it 5th (deterministic, so the best expert is known)."""
    from sbmoe.io.collection import load_qrels

    qrels = load_qrels(collection / "qrels" / f"{split}.tsv")
    qids = list(qrels)
    runs = []
    for expert in range(3):
        run = {}
        for qid in qids:
            target = next(iter(qrels[qid]))
            others = [f"x{i}" for i in range(10)]
            order = [target] + others if expert == good else others[:4] + [target] + others[4:]
            run[qid] = {doc: float(len(order) - rank) + 0.5 * expert for rank, doc in enumerate(order)}
        runs.append(run)
    return qids, runs


def test_route_stages_end_to_end(tiny_collection, tmp_path):
    qids, runs = tiny_runs(tiny_collection, "train", good=1)
    paths, pooled = write_split(tmp_path / "train", qids, runs, EXPERTS, seed=0)
    config = RouterConfig(features=["length", "bm25"], epochs=300, seed=3)
    description = train_router_stage(
        EXPERTS, ExpertInputs(paths, pooled, tiny_collection, "train"), tmp_path / "router", config, fusion_step=0.25
    )
    assert description["split"] == "train" and description["queries"] == len(qids) == 30
    assert description["wsum_step"] == 0.25 and all(
        w in (0.0, 0.25, 0.5, 0.75, 1.0) for w in description["wsum_weights"]
    )
    assert description["informative_queries"] == 30
    assert description["wsum_weights"][1] == max(description["wsum_weights"])
    assert description["training"]["epochs"][-1]["accuracy"] == 1.0

    test_qids, test_runs = tiny_runs(tiny_collection, "test", good=1)
    test_paths, test_pooled = write_split(tmp_path / "test", test_qids, test_runs, EXPERTS, seed=1)
    route_stage(
        tmp_path / "router",
        {"tiny": ExpertInputs(test_paths, test_pooled, tiny_collection)},
        tmp_path / "runs",
        tmp_path / "eval.json",
        tmp_path / "choices.json",
        k=10,
    )
    evaluations = json.loads((tmp_path / "eval.json").read_text())
    assert set(evaluations["tiny"]) == {*EXPERTS, *ROUTED}
    scores = {name: e["metrics"]["ndcg@10"] for name, e in evaluations["tiny"].items()}
    assert scores["router-hard"] == scores["oracle"] == scores["zeroshot"] == 1.0
    assert scores["bm25"] < 1.0
    for name in ROUTED:
        assert_valid_trec(tmp_path / "runs" / "tiny" / f"{name}.trec", k=10)
    choices = json.loads((tmp_path / "choices.json").read_text())["tiny"]
    shares = choice_shares(choices)
    assert shares["router"] == [0.0, 1.0, 0.0] and shares["oracle"] == [0.0, 1.0, 0.0]
    assert shares["queries"] == len(test_qids) and sum(shares["soft"]) == pytest.approx(1.0)
    assert best_single(evaluations["tiny"], EXPERTS) == "zeroshot"

    report = significance_against_best_single({"tiny": evaluations}, {"tiny": EXPERTS}, permutations=1000)
    assert {c["system"] for c in report["comparisons"]} == {"rrf", "wsum", "router-hard", "router-soft"}
    assert all(c["baseline"] == "zeroshot" and c["family_size"] == 4 for c in report["comparisons"])


def test_route_stage_checks_its_queries(tiny_collection, tmp_path):
    qids, runs = tiny_runs(tiny_collection, "valid", good=0)
    paths, pooled = write_split(tmp_path / "valid", qids[:-1], [{q: r[q] for q in qids[:-1]} for r in runs], EXPERTS, 0)
    with pytest.raises(ValueError, match="not the judged queries"):
        train_router_stage(EXPERTS, ExpertInputs(paths, pooled, tiny_collection, "valid"), tmp_path / "router")
    with pytest.raises(ValueError, match="3 experts but 2 runs"):
        train_router_stage(EXPERTS, ExpertInputs(paths[:2], pooled, tiny_collection, "valid"), tmp_path / "router")
    assert not (tmp_path / "router").exists()


# ---- table, figure and macros ----


def synthetic_routing(seed=10, metrics=REPORTED_METRICS):
    """Evaluations (of ``metrics``) and choices as the routing stage writes them, for SciFact
    (in-domain) and Cranfield (zero-shot, SciFact's router), from random runs of three experts."""
    evaluations, choices = {"scifact": {}}, {"scifact": {}}
    for number, testset in enumerate(("scifact", "cranfield")):
        qids, runs, qrels = random_runs(seed=seed + number, queries=40)
        utility = utilities(runs, qrels, qids)
        weights = np.random.default_rng(seed).dirichlet(np.ones(3), size=len(qids))
        systems = routed_runs(runs, qids, weights, utility, [0.2, 0.3, 0.5], k=20)
        every = {**dict(zip(EXPERTS, runs)), **systems}
        evaluations["scifact"][testset] = {name: evaluate(run, qrels, list(metrics)) for name, run in every.items()}
        choices["scifact"][testset] = {
            "experts": EXPERTS,
            "queries": {
                q: {"router": EXPERTS[int(np.argmax(w))], "weights": w.tolist(), "utility": u.tolist()}
                for q, w, u in zip(qids, weights, utility)
            },
        }
    return evaluations, choices


PAIRS = [("scifact", "scifact"), ("scifact", "cranfield")]
LABELS = {"scifact": "SciFact", "cranfield": "Cranfield"}


def test_routing_table_marks_the_best_single_retriever(tmp_path):
    from sbmoe.analysis.tables.routing import load_bm25_reference, routing_table

    evaluations, _ = synthetic_routing()
    report = significance_against_best_single(evaluations, {"scifact": EXPERTS}, permutations=1000)
    reference = load_bm25_reference(ROOT / "workflow" / "bm25_reference.yaml")
    assert reference["scifact"] == 0.665 and reference["nfcorpus"] == 0.325
    table = routing_table(
        evaluations, EXPERTS, PAIRS, report, reference, metrics=REPORTED_METRICS, dataset_labels=LABELS
    )
    frame = table.frame
    for testset in ("scifact", "cranfield"):
        rows = frame[(frame["testset"] == testset) & (frame["metric"] == "ndcg@10") & (frame["kind"] != "published")]
        singles = rows[rows["kind"] == "expert"]
        assert rows.loc[rows["is_baseline"], "system"].tolist() == [singles.loc[singles["mean"].idxmax(), "system"]]
        contenders = rows[rows["kind"] != "oracle"]
        assert rows.loc[rows["best"], "mean"].round(3).eq(round(contenders["mean"].max(), 3)).all()
        assert rows.loc[rows["system"] == "oracle", "mean"].iloc[0] >= singles["mean"].max()
        tested = rows[rows["kind"].isin(["router", "fusion"])]
        assert tested["p_value"].notna().all() and len(tested) == 4
    assert frame.loc[frame["kind"] == "published", "mean"].tolist() == [0.665]
    assert r"\underline{" in table.latex and r"\textit{BM25 (BEIR, published)}" in table.latex
    assert "Cranfield" in table.latex and "(router: SciFact)" in table.latex
    assert table.latex.count(r"\midrule") == 5  # header, then experts | fusions | routers | oracle | BEIR


def test_routing_figure_and_macros(tmp_path):
    from sbmoe.analysis.figures.routing import routing_figure
    from sbmoe.analysis.paper import paper_macros
    from sbmoe.analysis.tables.routing import routing_table

    evaluations, choices = synthetic_routing()
    plotted = routing_figure(choices, PAIRS, tmp_path / "routing.pdf", tmp_path / "routing.png", LABELS)
    assert (tmp_path / "routing.png").stat().st_size > 5_000
    first = plotted["pairs"][0]
    assert first["experts"] == EXPERTS and sum(first["router"]) == pytest.approx(1.0)
    assert sum(first["oracle"]) == pytest.approx(1.0) and first["oracle_queries"] <= first["queries"] == 40

    report = significance_against_best_single(evaluations, {"scifact": EXPERTS}, permutations=1000)
    table = routing_table(
        evaluations, EXPERTS, PAIRS, report, {"scifact": 0.665}, metrics=REPORTED_METRICS, dataset_labels=LABELS
    )
    values = paper_macros(routing=table.frame, routing_figure=plotted, metrics=REPORTED_METRICS)
    ndcg = {name: e["metrics"]["ndcg@10"] for name, e in evaluations["scifact"]["scifact"].items()}
    best = max(EXPERTS, key=lambda name: ndcg[name])
    assert values["RoutingExperts"] == "3" and values["RoutingSets"] == "2"
    assert values["RoutingExpertList"] == "BM25, Zero-shot and SB-MoE TOP-1 E=3 (learned gate)"
    assert values["RoutingHeadDataset"] == "SciFact" and values["RoutingHeadBestSingle"] == expert_label(best)
    assert values["RoutingHeadHardNdcg"] == f"{ndcg['router-hard']:.3f}"
    assert values["RoutingHeadOracleNdcg"] == f"{ndcg['oracle']:.3f}"
    gain = max(ndcg["router-hard"], ndcg["router-soft"]) - ndcg[best]
    assert values["RoutingHeadGain"] == f"{gain:.3f}"
    assert values["RoutingComparisons"] == "16"
    assert values["RoutingBMComparison"] == f"{ndcg['bm25']:.3f} on SciFact (BEIR: 0.665)"
    assert values["RoutingHeadTopShare"] == f"{100 * max(first['router']):.0f}"
