"""The gate of routing over retrievers (sbmoe.selection.router): what it computes, what it learns
when the best expert is a known function of the query, how cross-validation picks its penalty, and
how it is saved."""

import json

import numpy as np
import pytest
import torch

from sbmoe.selection.router import Router, RouterConfig, cross_validate, read_description, train_router

EXPERTS = ["bm25", "zeroshot", "finetune"]


def none(n: int) -> np.ndarray:
    """No query features."""
    return np.zeros((n, 0))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# ---- what the gate computes ----


def test_weights_are_the_softmax_of_a_linear_map_of_standardised_inputs():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)  # 3 embedding dimensions and the length
    router = Router(EXPERTS, 3, RouterConfig(features=["length"]), mean, std)
    weight, bias = rng.normal(size=(3, 4)), rng.normal(size=3)
    with torch.no_grad():
        router.gate.weight.copy_(torch.as_tensor(weight))
        router.gate.bias.copy_(torch.as_tensor(bias))
    embeddings, features = rng.normal(size=(7, 3)), rng.normal(size=(7, 1))
    inputs = np.concatenate([embeddings, features], axis=1)
    expected = softmax(((inputs - mean) / std) @ weight.T + bias)
    np.testing.assert_allclose(router.weights(embeddings, features), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(router.choose(embeddings, features), expected.argmax(axis=1))


def test_choose_takes_the_first_expert_on_ties():
    router = Router(EXPERTS, 2, RouterConfig(features=[]))
    with torch.no_grad():
        router.gate.weight.zero_()
        router.gate.bias.copy_(torch.tensor([0.5, 2.0, 2.0]))
    assert router.choose(np.ones((4, 2)), none(4)).tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(router.weights(np.ones((1, 2)), none(1)).sum(), 1.0, rtol=1e-6)


def test_inputs_and_experts_are_checked():
    router = Router(EXPERTS, 4, RouterConfig(features=["length", "bm25"]))  # 1 + 3 feature columns
    with pytest.raises(ValueError, match=r"query embeddings of size 4, got shape \(2, 3\)"):
        router.weights(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"expected 4 features per query, got \(2, 1\)"):
        router.weights(np.zeros((2, 4)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="at least two experts"):
        Router(["bm25"], 4, RouterConfig(features=[]))
    with pytest.raises(ValueError, match="not a system name"):
        Router(["bm25", "colbert"], 4, RouterConfig(features=[]))
    with pytest.raises(ValueError, match="bm25 query features need bm25 among the experts"):
        Router(["zeroshot", "finetune"], 4, RouterConfig(features=["bm25"]))


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"hidden": -1}, "hidden >= 0"),
        ({"epochs": 0}, "epochs >= 1"),
        ({"lr": 0.0}, "lr > 0"),
        ({"folds": 1}, "folds >= 2"),
        ({"l2": []}, "one or more non-negative penalties"),
        ({"l2": [0.1, -0.1]}, "one or more non-negative penalties"),
        ({"features": ["idf"]}, "unknown query features ['idf']"),
    ],
)
def test_router_config_refuses_bad_settings(settings, words):
    with pytest.raises(ValueError) as caught:
        RouterConfig(**settings)
    assert words in str(caught.value)


def test_router_config_takes_one_penalty_as_a_list():
    assert RouterConfig(l2=0.5).l2 == [0.5]
    assert RouterConfig(l2=(1, 2)).l2 == [1.0, 2.0]


# ---- what it learns ----


def test_router_learns_the_expert_a_linear_function_of_the_query_picks():
    """The best of three experts is argmax(x M) for a fixed M: a linear gate can represent that rule
    and must recover it on unseen queries."""
    rng = np.random.default_rng(1)
    rule = rng.normal(size=(4, 3))

    def queries(n):
        embeddings = rng.normal(size=(n, 4))
        utility = rng.uniform(0.0, 0.3, size=(n, 3))
        utility[np.arange(n), (embeddings @ rule).argmax(axis=1)] = 0.9
        return embeddings, utility

    embeddings, utility = queries(150)
    config = RouterConfig(features=[], l2=[0.0], epochs=300, lr=0.05)
    router, log = train_router(EXPERTS, embeddings, none(150), utility, config, progress=False)
    assert log["cross_validation"] == {} and log["l2"] == 0.0  # one penalty: nothing to choose
    assert len(log["epochs"]) == 300 and log["epochs"][-1]["loss"] < log["epochs"][0]["loss"]
    unseen, truth = queries(400)
    accuracy = (router.choose(unseen, none(400)) == truth.argmax(axis=1)).mean()
    assert accuracy > 0.9, accuracy


def test_router_reads_the_query_features_and_cross_validation_keeps_the_weak_penalty():
    """The embeddings are noise; the query length decides (long queries: expert 1, 30% of them).
    A strong penalty silences the length and sends every query to expert 0, so cross-validation
    must prefer the weak one."""
    rng = np.random.default_rng(2)

    def queries(n):
        lengths = np.log1p(rng.integers(1, 20, size=n)).reshape(-1, 1)
        long = lengths[:, 0] > np.log1p(14)
        utility = np.zeros((n, 2))
        utility[np.arange(n), long.astype(int)] = 1.0
        return rng.normal(size=(n, 3)), lengths, utility

    embeddings, lengths, utility = queries(120)
    config = RouterConfig(features=["length"], l2=[0.001, 100.0], epochs=200, lr=0.05, folds=3)
    router, log = train_router(EXPERTS[1:], embeddings, lengths, utility, config, progress=False)
    scores = log["cross_validation"]
    assert scores["0.001"] > scores["100.0"] and log["l2"] == 0.001
    assert scores["100.0"] == pytest.approx(1.0 - utility[:, 1].mean())  # every held-out query to expert 0
    unseen, unseen_lengths, truth = queries(300)
    accuracy = (router.choose(unseen, unseen_lengths) == truth.argmax(axis=1)).mean()
    assert accuracy > 0.95, accuracy


def test_router_keeps_the_standardisation_of_its_training_queries():
    rng = np.random.default_rng(3)
    embeddings = rng.normal(3.0, 2.0, size=(20, 3))
    embeddings[:, 1] = 5.0  # a constant column: divided by 1, not by 0
    utility = rng.uniform(size=(20, 2))
    router, _ = train_router(
        EXPERTS[:2], embeddings, none(20), utility, RouterConfig(features=[], l2=[0.1], epochs=5), progress=False
    )
    expected_std = embeddings.std(axis=0)
    expected_std[1] = 1.0
    np.testing.assert_allclose(router.mean.numpy(), embeddings.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(router.std.numpy(), expected_std, rtol=1e-5)


def test_cross_validation_without_signal_in_the_training_folds_scores_chance():
    """Three queries, so three folds of one query. Held out q0, the other two tell the experts
    apart in nothing: q0 scores its mean utility (0.5). Held out q1 or q2, both experts score the
    same on it (0.3, 0.2). The mean, 1/3, is the same for every penalty, so the strongest is kept."""
    utility = np.array([[1.0, 0.0], [0.3, 0.3], [0.2, 0.2]])
    embeddings = np.random.default_rng(4).normal(size=(3, 2)).astype(np.float32)
    config = RouterConfig(features=[], l2=[0.01, 0.1], epochs=20, folds=5)
    scores = cross_validate(EXPERTS[:2], 2, embeddings, utility, config, progress=False)
    assert scores == pytest.approx({0.01: 1 / 3, 0.1: 1 / 3})
    _, log = train_router(EXPERTS[:2], embeddings, none(3), utility, config, progress=False)
    assert log["cross_validation"] == pytest.approx({"0.01": 1 / 3, "0.1": 1 / 3}) and log["l2"] == 0.1


def test_train_router_refuses_unusable_utilities():
    with pytest.raises(ValueError, match=r"utility must be \(queries, experts\) = \(4, 3\), got \(4, 2\)"):
        train_router(EXPERTS, np.zeros((4, 2)), none(4), np.zeros((4, 2)), RouterConfig(features=[]))
    with pytest.raises(ValueError, match="no training query tells the experts apart"):
        train_router(EXPERTS, np.zeros((4, 2)), none(4), np.full((4, 3), 0.5), RouterConfig(features=[]))


# ---- saved and loaded ----


def test_save_writes_the_description_and_load_gives_the_same_gate(tmp_path):
    rng = np.random.default_rng(5)
    embeddings, features = rng.normal(size=(12, 3)), rng.normal(size=(12, 1))
    config = RouterConfig(hidden=4, epochs=10, l2=[0.1], features=["length"], seed=11)
    router, _ = train_router(EXPERTS, embeddings, features, rng.uniform(size=(12, 3)), config, progress=False)
    router.save(tmp_path / "router", {"wsum_weights": [0.2, 0.3, 0.5]})
    description = json.loads((tmp_path / "router" / "router.json").read_text())
    assert description == {
        "experts": EXPERTS,
        "embedding_size": 3,
        "config": {"hidden": 4, "epochs": 10, "lr": 0.01, "l2": [0.1], "folds": 5, "features": ["length"], "seed": 11},
        "wsum_weights": [0.2, 0.3, 0.5],
    }
    assert read_description(tmp_path / "router") == description
    loaded = Router.load(tmp_path / "router")
    assert loaded.experts == EXPERTS and loaded.config == config and not loaded.training
    np.testing.assert_array_equal(loaded.weights(embeddings, features), router.weights(embeddings, features))
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}: not a router folder \(no router.json\)"):
        read_description(tmp_path)
