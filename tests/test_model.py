"""Model variants: building, names, save/load round trips, encoding order, cached pooled inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbmoe.io.encoded import Encoded
from sbmoe.io.errors import DataFormatError
from sbmoe.models.encoder import Encoder
from sbmoe.models.moe import Gate, RandomGate
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.systems.names import parse_system

TEXTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10", "w11 w12", "w13 w14 w15 w16", "w17 w18 w19 w20 w21 w22 w23 w24", "w25"]

VARIANTS = [
    ("finetune", "paper", 0),
    ("sbmoe", "paper", 3),
    ("sbmoe", "learned", 3),
    ("random-gate", "paper", 3),
    ("random-gate", "learned", 3),
    ("adapter", "paper", 1),
    ("adapter", "learned", 1),
]


def _config(encoder_config, variant, combination="paper", num_experts=3, **extra):
    return ModelConfig(
        encoder=encoder_config(), variant=variant, combination=combination, num_experts=num_experts, **extra
    )


@pytest.mark.parametrize("variant,combination,experts", VARIANTS)
def test_every_variant_builds_and_encodes(encoder_config, variant, combination, experts):
    model = Retriever(_config(encoder_config, variant, combination))
    assert model.config.num_experts == experts
    if variant == "finetune":
        assert model.moe is None
    else:
        assert len(model.moe.experts) == experts and model.moe.combination == combination
        gate_type = {"sbmoe": Gate, "random-gate": RandomGate, "adapter": type(None)}[variant]
        assert isinstance(model.moe.gate, gate_type)
    for pooling in model.config.poolings:
        encoded = model.encode(TEXTS, "doc", pooling, progress=False)
        assert encoded.embeddings.shape == (len(TEXTS), 32) and encoded.embeddings.dtype == np.float32
        if model.config.has_gate:
            assert encoded.experts.shape == (len(TEXTS),) and encoded.gate.shape == (len(TEXTS), experts)
            assert encoded.experts.min() >= 0 and encoded.experts.max() < experts
        else:
            assert (encoded.experts == -1).all() and encoded.gate.shape == (len(TEXTS), 0)
    if variant == "finetune":
        np.testing.assert_array_equal(encoded.embeddings, model.encoder.pool(TEXTS, "doc", progress=False).numpy())


def test_system_names(encoder_config):
    names = {(v, c): _config(encoder_config, v, c, 6).system for v, c, _ in VARIANTS}
    assert names[("finetune", "paper")] == "finetune"
    assert names[("sbmoe", "paper")] == "sbmoe-paper-e6"
    assert names[("sbmoe", "learned")] == "sbmoe-learned-e6"
    assert names[("random-gate", "paper")] == "random-gate-e6"
    assert names[("adapter", "paper")] == "adapter-paper"
    assert names[("adapter", "learned")] == "adapter-learned"
    assert _config(encoder_config, "sbmoe", "paper", 12).system == "sbmoe-paper-e12"
    for (variant, _), name in names.items():
        assert parse_system(name)["variant"] == variant
    assert _config(encoder_config, "sbmoe").poolings == ("top1", "all")
    assert _config(encoder_config, "random-gate").poolings == ("top1",)
    assert _config(encoder_config, "finetune").poolings == ("none",)
    assert _config(encoder_config, "adapter").poolings == ("none",)


def test_invalid_model_configs(encoder_config):
    with pytest.raises(ValueError, match="variant"):
        _config(encoder_config, "dense")
    with pytest.raises(ValueError, match="combination"):
        _config(encoder_config, "sbmoe", "sum")
    with pytest.raises(ValueError, match="num_experts"):
        _config(encoder_config, "sbmoe", num_experts=1)


def test_block_initialisation_depends_on_the_seed_only(encoder_config):
    first = Retriever(_config(encoder_config, "sbmoe", seed=5))
    torch.rand(100)  # the global generator's state does not matter
    second = Retriever(_config(encoder_config, "sbmoe", seed=5))
    third = Retriever(_config(encoder_config, "sbmoe", seed=6))
    for key, value in first.moe.state_dict().items():
        assert torch.equal(value, second.moe.state_dict()[key])
    assert not torch.equal(first.moe.experts[0].down.weight, third.moe.experts[0].down.weight)


def _perturb_encoder(model: Retriever) -> None:
    """Stand-in for fine-tuning: move every encoder weight."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.encoder.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))


@pytest.mark.parametrize("variant,combination,experts", VARIANTS)
@pytest.mark.parametrize("encoder_trained", [True, False])
def test_save_load_gives_identical_embeddings(tmp_path, encoder_config, variant, combination, experts, encoder_trained):
    model = Retriever(_config(encoder_config, variant, combination, encoder_trained=encoder_trained))
    original = model.encoder.pool(TEXTS, "doc", progress=False)
    if encoder_trained:
        _perturb_encoder(model)
        assert not torch.allclose(model.encoder.pool(TEXTS, "doc", progress=False), original)
    if model.moe is not None:  # move the block away from its seeded initialisation
        with torch.no_grad():
            for param in model.moe.parameters():
                param.add_(0.05)
    folder = tmp_path / "model"
    model.save(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["variant"] == variant and saved["encoder_trained"] == encoder_trained
    assert (folder / "encoder").is_dir() == encoder_trained
    assert (folder / "moe.pt").is_file() == (variant != "finetune")
    loaded = Retriever.load(folder)
    assert loaded.config.system == model.config.system
    for pooling in model.config.poolings:
        for kind in ("query", "doc"):
            before = model.encode(TEXTS, kind, pooling, batch_size=3, progress=False)
            after = loaded.encode(TEXTS, kind, pooling, batch_size=3, progress=False)
            assert np.array_equal(before.embeddings, after.embeddings), (pooling, kind)
            assert np.array_equal(before.experts, after.experts)
            assert np.array_equal(before.gate, after.gate)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind


def test_random_gate_encoding_is_repeatable(encoder_config):
    model = Retriever(_config(encoder_config, "random-gate", num_experts=4))
    first = model.encode(TEXTS * 5, "doc", progress=False)
    second = model.encode(TEXTS * 5, "doc", progress=False)
    assert np.array_equal(first.experts, second.experts) and np.array_equal(first.embeddings, second.embeddings)
    assert len(set(first.experts.tolist())) > 1
    other = Retriever(_config(encoder_config, "random-gate", num_experts=4, seed=43)).encode(
        TEXTS * 5, "doc", progress=False
    )
    assert not np.array_equal(first.experts, other.experts)


def test_encode_returns_input_order(encoder_config):
    model = Retriever(_config(encoder_config, "sbmoe"))
    encoded = model.encode(TEXTS, "doc", "top1", batch_size=2, progress=False)
    one_by_one = [model.encode([text], "doc", "top1", progress=False) for text in TEXTS]
    np.testing.assert_allclose(encoded.embeddings, np.concatenate([e.embeddings for e in one_by_one]), atol=1e-5)
    assert encoded.experts.tolist() == [int(e.experts[0]) for e in one_by_one]
    backwards = model.encode(TEXTS[::-1], "doc", "top1", batch_size=2, progress=False)
    np.testing.assert_allclose(backwards.embeddings[::-1], encoded.embeddings, atol=1e-5)


@pytest.mark.parametrize("variant", ["sbmoe", "random-gate", "adapter", "finetune"])
def test_encode_pooled_equals_encode(encoder_config, variant):
    model = Retriever(_config(encoder_config, variant))
    pooled = model.encoder.pool(TEXTS, "query", progress=False)
    for pooling in model.config.poolings:
        direct = model.encode(TEXTS, "query", pooling, progress=False)
        cached = model.encode_pooled(pooled, pooling)
        assert np.array_equal(direct.embeddings, cached.embeddings)
        assert np.array_equal(direct.experts, cached.experts) and np.array_equal(direct.gate, cached.gate)
        in_pieces = model.encode_pooled(pooled, pooling, batch_size=3)  # batching changes rounding only
        np.testing.assert_allclose(in_pieces.embeddings, direct.embeddings, atol=1e-6)
        assert np.array_equal(in_pieces.experts, direct.experts)


def test_top1_and_all_share_the_routing(encoder_config):
    model = Retriever(_config(encoder_config, "sbmoe", num_experts=4))
    top1 = model.encode(TEXTS, "doc", "top1", progress=False)
    full = model.encode(TEXTS, "doc", "all", progress=False)
    assert np.array_equal(top1.experts, full.experts)
    assert ((top1.gate != 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(full.gate.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(top1.gate.max(axis=1), full.gate.max(axis=1), atol=1e-7)
    assert not np.allclose(top1.embeddings, full.embeddings)


def test_encoded_save_load_concatenate(tmp_path):
    part = Encoded(
        embeddings=np.arange(6, dtype=np.float32).reshape(3, 2),
        experts=np.array([0, 2, 1]),
        gate=np.eye(3, dtype=np.float32),
        ids=["a", "b", "c"],
    )
    part.save(tmp_path / "part.npz")
    loaded = Encoded.load(tmp_path / "part.npz")
    assert loaded.ids == ["a", "b", "c"]
    assert np.array_equal(loaded.embeddings, part.embeddings) and np.array_equal(loaded.experts, part.experts)
    both = Encoded.concatenate([loaded, loaded])
    assert both.ids == ["a", "b", "c"] * 2 and both.embeddings.shape == (6, 2) and both.gate.shape == (6, 3)


def test_load_of_a_folder_without_config(tmp_path):
    with pytest.raises(DataFormatError, match="config.json"):
        Retriever.load(tmp_path)


def test_encoder_is_shared_between_queries_and_documents(encoder_config):
    encoder = Encoder(encoder_config())
    model = Retriever(_config(encoder_config, "sbmoe"), encoder=encoder)
    assert model.encoder is encoder
    q = model.encode(["w1 w2"], "query", progress=False).embeddings
    d = model.encode(["w1 w2"], "doc", progress=False).embeddings
    assert np.array_equal(q, d)  # same text, same limits: same vector


@pytest.mark.parametrize("variant", ["sbmoe", "random-gate", "finetune"])
def test_block_only_model_matches_the_full_model_on_pooled_inputs(tmp_path, encoder_config, variant):
    model = Retriever(_config(encoder_config, variant, encoder_trained=False))
    model.save(tmp_path / "model")
    block = Retriever.load(tmp_path / "model", with_encoder=False)
    assert block.encoder is None and block.hidden_size == 32
    pooled = model.encoder.pool(TEXTS, "doc", progress=False)
    for pooling in model.config.poolings:
        full, alone = model.encode_pooled(pooled, pooling), block.encode_pooled(pooled, pooling)
        assert np.array_equal(full.embeddings, alone.embeddings) and np.array_equal(full.experts, alone.experts)
    with pytest.raises(ValueError, match="without its encoder"):
        block.encode(TEXTS, "doc", progress=False)
    # the block's initialisation is the same with or without an encoder
    fresh = Retriever(_config(encoder_config, variant), hidden_size=32, encoder=None)
    if variant != "finetune":
        for key, value in model.moe.state_dict().items():
            assert torch.equal(value, fresh.moe.state_dict()[key])
