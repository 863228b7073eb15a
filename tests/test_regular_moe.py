"""The Regular MoE: upcycling (at initialisation the model is the dense encoder, also on
all-MiniLM-L6-v2's real weights), top-k routing, the load-balancing loss, training inside the top
layers with routing statistics in the log, and save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbmoe.io.collection import Collection
from sbmoe.models.encoder import EMBEDDED_MODEL, TINY_RANDOM_MODEL, EncoderConfig
from sbmoe.models.prefix import compute_prefix
from sbmoe.models.regular_moe import MoEFeedForward, TokenRouting, balance_loss, layer_indices
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.training.config import TrainConfig
from sbmoe.training.trainer import train

TEXTS = ["vitamin d and bone density", "x", "exercise lowers blood pressure in adults over twelve weeks", "genes"]


def _encoder(**overrides) -> EncoderConfig:
    values = dict(name_or_path=TINY_RANDOM_MODEL, normalize=True, query_max_length=16, doc_max_length=24)
    values.update(overrides)
    return EncoderConfig(**values)


def _regular(num_experts=4, top_k=2, moe_layers=(-1,), seed=42, **encoder) -> Retriever:
    return Retriever(
        ModelConfig(
            _encoder(**encoder),
            variant="regular-moe",
            num_experts=num_experts,
            top_k=top_k,
            moe_layers=list(moe_layers),
            seed=seed,
        )
    )


def _dense(**encoder) -> Retriever:
    return Retriever(ModelConfig(_encoder(**encoder), variant="finetune"))


@pytest.mark.parametrize("top_k,moe_layers", [(1, (-1,)), (2, (-1,)), (2, (0, 1)), (4, (0,))])
def test_upcycled_model_equals_the_dense_encoder_at_initialisation(top_k, moe_layers):
    dense = _dense().encode(TEXTS, "doc", "none", progress=False).embeddings
    model = _regular(top_k=top_k, moe_layers=moe_layers)
    assert sorted(int(i) for i in model.encoder.feed_forward) == layer_indices(list(moe_layers), 2)
    moe = model.encode(TEXTS, "doc", "none", progress=False).embeddings
    if top_k == 1:  # one expert at weight exactly 1: the dense computation itself
        np.testing.assert_allclose(moe, dense, atol=1e-6, rtol=0)
    else:  # weights summing to 1 over identical experts: equal up to rounding
        np.testing.assert_allclose(moe, dense, atol=1e-5, rtol=0)
    assert model.config.system == f"regular-moe-e4-k{top_k}" and model.config.poolings == ("none",)


def test_minilm_upcycled_equals_dense():
    """Real weights: all-MiniLM-L6-v2 with its top two feed-forward sub-layers upcycled into 4 experts."""
    minilm = dict(name_or_path=EMBEDDED_MODEL, query_max_length=256, doc_max_length=256)
    dense = _dense(**minilm)
    model = Retriever(
        ModelConfig(_encoder(**minilm), variant="regular-moe", num_experts=4, top_k=2, moe_layers=[-2, -1]),
        encoder=dense.encoder,
    )
    moe = model.encode(TEXTS, "doc", "none", progress=False).embeddings
    model.encoder.feed_forward.clear()
    plain = dense.encode(TEXTS, "doc", "none", progress=False).embeddings
    assert np.abs(moe - plain).max() < 1e-5


def test_routing_picks_the_top_k_and_renormalises():
    torch.manual_seed(0)
    dense = _dense()
    layer = dense.encoder.layers[1]
    moe = MoEFeedForward(layer, num_experts=3, top_k=2, init_std=1.0)
    with torch.no_grad():
        for index, expert in enumerate(moe.experts):  # make the experts differ
            expert.dense.bias.add_(float(index))
        x = torch.randn(5, 32)
        out = moe(x)
        probs = torch.softmax(moe.router(x), dim=-1)
        for token in range(5):
            top = probs[token].topk(2)
            weights = top.values / top.values.sum()
            expected = sum(w * moe.experts[int(e)](x[token : token + 1])[0] for w, e in zip(weights, top.indices))
            torch.testing.assert_close(out[token], expected, atol=1e-5, rtol=1e-5)
    assert moe.routing.experts.shape == (5, 2) and int(moe.routing.load().sum()) == 10
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(layer, num_experts=2, top_k=3)


def test_balance_loss_is_one_when_uniform_and_grows_with_collapse():
    uniform = TokenRouting(probs=torch.full((4, 4), 0.25), experts=torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]]))
    assert float(balance_loss(uniform)) == pytest.approx(1.0)
    collapsed = TokenRouting(probs=torch.tensor([[0.97, 0.01, 0.01, 0.01]] * 4), experts=torch.tensor([[0, 1]] * 4))
    assert float(balance_loss(collapsed)) == pytest.approx(4 * (0.5 * 0.97 + 0.5 * 0.01))


def test_layer_indices():
    assert layer_indices([-1, 0], 6) == [0, 5]
    with pytest.raises(ValueError, match="does not exist"):
        layer_indices([6], 6)
    with pytest.raises(ValueError, match="twice"):
        layer_indices([5, -1], 6)
    with pytest.raises(ValueError, match="moe_layers"):
        ModelConfig(_encoder(), variant="regular-moe", num_experts=4, moe_layers=[])
    with pytest.raises(ValueError, match="top_k"):
        ModelConfig(_encoder(), variant="regular-moe", num_experts=2, top_k=3)


# --- training ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tiny_collection):
    return Collection.load(tiny_collection, "train")


def _config(**overrides) -> TrainConfig:
    values = dict(
        epochs=2,
        batch_size=8,
        encoder_lr=1e-3,
        moe_lr=1e-2,
        valid_fraction=0.2,
        seed=7,
        train_layers=1,
        router_balance_coef=0.01,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_training_inside_the_top_layer_logs_routing_per_moe_layer(data):
    model = _regular(num_experts=3, top_k=2)
    before = _state(model)
    result = train(model, data.corpus, data.queries, data.qrels, _config(), progress=False)
    after = _state(model)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    prefix = "encoder.feed_forward.1."
    assert {
        f"{prefix}router.weight",
        f"{prefix}experts.0.dense.weight",
        f"{prefix}experts.2.intermediate.dense.weight",
    } <= moved
    assert any(k.startswith("encoder.model.encoder.layer.1.attention.") for k in moved)
    # the replaced dense feed-forward weights, the frozen layer and the embeddings did not move
    assert not [
        k
        for k in moved
        if k.startswith(
            (
                "encoder.model.encoder.layer.1.intermediate.",
                "encoder.model.encoder.layer.1.output.dense.",
                "encoder.model.encoder.layer.0.",
                "encoder.model.embeddings.",
            )
        )
    ]
    experts = model.encoder.feed_forward["1"].experts
    assert not torch.equal(experts[0].dense.weight, experts[1].dense.weight)  # the copies diverged
    for entry in result.log:
        assert entry["expert_load"] is None and entry["gate_grad_norm"] is None  # no SB-MoE gate
        routing = entry["layer_routing"]["1"]
        assert sum(routing["expert_load"]) == pytest.approx(1.0) and len(routing["expert_load"]) == 3
        assert 0 < routing["routing_entropy"] <= math.log(3) + 1e-9
        assert 0 < routing["balance_loss"] <= 3  # E * sum f_i P_i lies in (0, E]


def test_the_balance_loss_changes_training(data):
    runs = {}
    for coef in (0.0, 1.0):
        model = _regular(num_experts=3, top_k=1)
        runs[coef] = train(
            model, data.corpus, data.queries, data.qrels, _config(epochs=1, router_balance_coef=coef), progress=False
        ).log[0]
    assert runs[0.0]["loss"] != runs[1.0]["loss"]
    assert runs[0.0]["layer_routing"]["1"]["balance_loss"] > 0


def test_moe_layers_must_be_trained(data):
    with pytest.raises(ValueError, match="among the trained layers"):
        train(_regular(moe_layers=(0,)), data.corpus, data.queries, data.qrels, _config(epochs=1), progress=False)


def test_save_and_load_give_identical_embeddings(tmp_path, data):
    model = _regular(num_experts=3, top_k=2)
    train(model, data.corpus, data.queries, data.qrels, _config(epochs=1), progress=False)
    expected = model.encode(TEXTS, "doc", "none", progress=False).embeddings
    cache = compute_prefix(model.encoder, [str(i) for i in range(len(TEXTS))], TEXTS, "doc", 1, progress=False)
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "regular_moe.pt").is_file() and (tmp_path / "model" / "encoder").is_dir()
    loaded = Retriever.load(tmp_path / "model")
    assert np.array_equal(loaded.encode(TEXTS, "doc", "none", progress=False).embeddings, expected)
    from_cache = loaded.encode_pooled(loaded.pool_prefix(cache, progress=False), "none").embeddings
    assert np.abs(from_cache - expected).max() < 1e-5
    other_seed = _regular(num_experts=3, top_k=2, seed=43)
    assert not torch.equal(
        other_seed.encoder.feed_forward["1"].router.weight,
        _regular(num_experts=3, top_k=2).encoder.feed_forward["1"].router.weight,
    )
