"""Partial fine-tuning over a cached prefix: the top layers over the cache give the full forward
pass's embeddings (tiny encoder, and all-MiniLM-L6-v2 on real weights), the cache on disk, training
with and without the cache, dropout in the trained layers only, and bit-identical reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbmoe.io.collection import Collection, document_text
from sbmoe.io.encoded import Encoded
from sbmoe.models.encoder import EMBEDDED_MODEL, TINY_RANDOM_MODEL, EncoderConfig
from sbmoe.models.prefix import FILES, PrefixCache, PrefixStates, compute_prefix, pad, prefix_depth
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.pipeline.stages import encode_stage, init_stage, prefix_stage, train_stage
from sbmoe.training.config import TrainConfig
from sbmoe.training.trainer import train

TEXTS = [
    "vitamin d and bone density in elderly women",
    "x",
    "a much longer text about the effect of exercise on blood pressure, measured over twelve weeks " * 3,
    "query",
    "tumour suppressor genes",
]
IDS = [f"t{i}" for i in range(len(TEXTS))]


def _tiny(variant="finetune", **extra) -> Retriever:
    encoder = EncoderConfig(TINY_RANDOM_MODEL, normalize=True, query_max_length=16, doc_max_length=24)
    return Retriever(ModelConfig(encoder, variant=variant, encoder_trained=False, **extra))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_prefix_depth():
    assert prefix_depth("all", 6) is None
    assert prefix_depth(0, 6) == 6  # a frozen encoder
    assert prefix_depth(1, 6) == 5 and prefix_depth(6, 6) == 0  # 6: every layer, not the embeddings
    with pytest.raises(ValueError, match="has 6"):
        prefix_depth(7, 6)
    with pytest.raises(ValueError, match="train_layers"):
        prefix_depth("some", 6)


@pytest.mark.parametrize("depth", [0, 1])
def test_top_layers_over_the_cache_equal_the_full_forward(depth):
    model = _tiny()
    for kind in ("query", "doc"):
        full = model.encoder.pool(TEXTS, kind, batch_size=2, progress=False).numpy()
        cache = compute_prefix(model.encoder, IDS, TEXTS, kind, depth, batch_size=2, progress=False)
        assert cache.lengths().tolist() == model.encoder.token_counts(TEXTS, kind)
        assert max(cache.lengths()) == model.encoder.max_length(kind)  # the long text is cut at the max length
        top = model.pool_prefix(cache, batch_size=3, progress=False).numpy()
        assert np.abs(top - full).max() < 1e-5
        assert _cosines(top, full).min() >= 0.9999


def test_minilm_top_layers_over_cached_states_match_the_full_forward():
    """Real weights: all-MiniLM-L6-v2's top one and two layers over cached layer-5 and layer-4 states."""
    encoder = EncoderConfig(EMBEDDED_MODEL, normalize=True, query_max_length=256, doc_max_length=256)
    model = Retriever(ModelConfig(encoder, variant="finetune", encoder_trained=False))
    assert model.encoder.num_layers == 6
    full = model.encoder.pool(TEXTS, "doc", batch_size=8, progress=False).numpy()
    for depth in (5, 4):
        cache = compute_prefix(model.encoder, IDS, TEXTS, "doc", depth, batch_size=2, progress=False)
        top = model.pool_prefix(cache, batch_size=8, progress=False).numpy()
        assert _cosines(top, full).min() >= 0.9999, depth
        assert np.abs(top - full).max() < 1e-5, depth


def test_cache_on_disk_is_a_memory_map_and_parts_are_looked_up_by_id(tmp_path):
    model = _tiny()
    in_memory = compute_prefix(model.encoder, IDS, TEXTS, "doc", 1, progress=False)
    first = compute_prefix(model.encoder, IDS[:3], TEXTS[:3], "doc", 1, tmp_path / "part-0", progress=False)
    second = compute_prefix(model.encoder, IDS[3:], TEXTS[3:], "doc", 1, tmp_path / "part-1", progress=False)
    assert sorted(p.name for p in (tmp_path / "part-0").iterdir()) == sorted(FILES)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written left
    loaded = PrefixStates.load(tmp_path / "part-0")
    assert isinstance(loaded.tokens, np.memmap) and loaded.ids == IDS[:3]
    assert json.loads((tmp_path / "part-0" / "meta.json").read_text())["depth"] == 1
    cache = PrefixCache([first, second])
    for got, expected in zip(cache.states(["t4", "t0", "t2"]), in_memory.states([4, 0, 2])):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # other batches, other rounding
    with pytest.raises(KeyError, match="prefix states"):
        cache.states(["t9"])
    other = compute_prefix(model.encoder, IDS[:1], TEXTS[:1], "doc", 0, progress=False)
    with pytest.raises(ValueError, match="disagree"):
        PrefixCache([first, other])
    with pytest.raises(FileNotFoundError, match="not a prefix cache"):
        PrefixStates.load(tmp_path)


def test_pad_and_the_cache_refuse_what_does_not_fit():
    hidden, mask = pad([torch.ones(2, 4), torch.ones(3, 4)])
    assert hidden.shape == (2, 3, 4) and mask.tolist() == [[1, 1, 0], [1, 1, 1]] and hidden[0, 2].abs().sum() == 0
    model = _tiny()
    cache = compute_prefix(model.encoder, IDS, TEXTS, "doc", 1, progress=False)
    longer = Retriever(ModelConfig(EncoderConfig(TINY_RANDOM_MODEL, doc_max_length=64), encoder_trained=False))
    with pytest.raises(ValueError, match="max length 24"):
        longer.pool_prefix(cache, progress=False)
    trained = _tiny()
    trained.config.encoder_trained, trained.config.frozen_layers = True, 0  # every layer trained
    with pytest.raises(ValueError, match="depth <= 0"):
        trained.pool_prefix(cache, progress=False)
    with pytest.raises(ValueError, match="depth"):
        compute_prefix(model.encoder, IDS, TEXTS, "doc", 2, progress=False)  # nothing left to train


# --- training -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tiny_collection):
    return Collection.load(tiny_collection, "train")


def _config(**overrides) -> TrainConfig:
    values = dict(epochs=2, batch_size=8, encoder_lr=1e-3, moe_lr=1e-2, valid_fraction=0.2, seed=7, train_layers=1)
    values.update(overrides)
    return TrainConfig(**values)


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_partial_training_moves_the_top_layers_only(data):
    model = _tiny("sbmoe", num_experts=3, combination="learned")
    before = _state(model)
    train(model, data.corpus, data.queries, data.qrels, _config(), progress=False)
    moved = _changed(before, _state(model))
    assert any(k.startswith("encoder.model.encoder.layer.1.") for k in moved)
    assert any(k.startswith("moe.") for k in moved)
    assert not [k for k in moved if k.startswith(("encoder.model.embeddings.", "encoder.model.encoder.layer.0."))]
    assert model.config.encoder_trained is True and model.config.frozen_layers == 1


def test_cached_prefix_equals_running_the_frozen_layers(data):
    """Training the top layer on the cache gives what running the frozen layer on every batch gives."""
    runs = []
    for cache in (True, False):
        model = _tiny("sbmoe", num_experts=3, combination="learned")
        result = train(model, data.corpus, data.queries, data.qrels, _config(cache_frozen=cache), progress=False)
        runs.append((result, _state(model)))
    (cached, cached_state), (uncached, uncached_state) = runs
    for a, b in zip(cached.log, uncached.log):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["val_loss"] == pytest.approx(
            b["val_loss"], abs=1e-5
        )
        assert a["expert_load"] == b["expert_load"]
    for key, value in cached_state.items():
        torch.testing.assert_close(value, uncached_state[key], atol=1e-5, rtol=0)


def test_dropout_is_active_in_the_trained_layers_only(data):
    model = _tiny()
    seen: dict[str, set[bool]] = {}
    modules = {
        "embeddings": model.encoder.model.embeddings,
        "layer0": model.encoder.layers[0],
        "layer1": model.encoder.layers[1],
    }
    for name, module in modules.items():
        module.register_forward_pre_hook(lambda m, args, name=name: seen.setdefault(name, set()).add(m.training))
    # without the cache the frozen layer runs on every batch, in eval mode; the validation passes run in eval mode
    train(model, data.corpus, data.queries, data.qrels, _config(epochs=1, cache_frozen=False), progress=False)
    assert seen["embeddings"] == {False} and seen["layer0"] == {False}
    assert seen["layer1"] == {True, False}


def test_supplied_prefix_cache_must_enter_the_trained_layers(data):
    model = _tiny()
    qids = sorted(data.qrels)
    doc_ids = sorted({d for docs in data.qrels.values() for d in docs})

    def caches(depth):
        return {
            "query": PrefixCache(
                [compute_prefix(model.encoder, qids, [data.queries[q] for q in qids], "query", depth, progress=False)]
            ),
            "doc": PrefixCache(
                [
                    compute_prefix(
                        model.encoder,
                        doc_ids,
                        [document_text(data.corpus[d]) for d in doc_ids],
                        "doc",
                        depth,
                        progress=False,
                    )
                ]
            ),
        }

    supplied = train(model, data.corpus, data.queries, data.qrels, _config(epochs=1), progress=False, prefix=caches(1))
    own = train(_tiny(), data.corpus, data.queries, data.qrels, _config(epochs=1), progress=False)
    assert supplied.log[0]["loss"] == pytest.approx(own.log[0]["loss"], abs=1e-5)
    with pytest.raises(ValueError, match="enter layer 0"):
        train(_tiny(), data.corpus, data.queries, data.qrels, _config(epochs=1), progress=False, prefix=caches(0))
    with pytest.raises(ValueError, match="train_layers"):
        train(
            _tiny(),
            data.corpus,
            data.queries,
            data.qrels,
            _config(epochs=1, train_layers="all"),
            progress=False,
            prefix=caches(1),
        )


def test_a_partially_trained_model_reloads_to_identical_embeddings(tmp_path, tiny_collection):
    """Stages end to end: the base model's prefix caches, training the top layer on them, saving, and
    encoding the corpus from the cache and from the text, before and after reloading."""
    encoder = EncoderConfig(TINY_RANDOM_MODEL, normalize=True, query_max_length=16, doc_max_length=24)
    init_stage(ModelConfig(encoder, variant="finetune"), tmp_path / "base")
    prefix_stage(
        tmp_path / "base", tiny_collection, "queries", tmp_path / "queries-train", 1, split="train", device="cpu"
    )
    prefix_stage(tmp_path / "base", tiny_collection, "corpus", tmp_path / "corpus-0", 1, device="cpu")
    with pytest.raises(ValueError, match="1 to 2 trained layers"):
        prefix_stage(tmp_path / "base", tiny_collection, "corpus", tmp_path / "nothing", 0, device="cpu")
    config = ModelConfig(encoder, variant="sbmoe", num_experts=3, combination="learned")
    train_stage(
        tiny_collection,
        config,
        _config(),
        tmp_path / "model",
        tmp_path / "log.jsonl",
        device="cpu",
        progress=False,
        prefix_queries=tmp_path / "queries-train",
        prefix_corpus=[tmp_path / "corpus-0"],
    )
    assert (tmp_path / "model" / "encoder").is_dir()
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["encoder_trained"] is True and saved["frozen_layers"] == 1

    outputs = {}
    for name, prefix in (("cached", tmp_path / "corpus-0"), ("text", None)):
        outputs[name] = [tmp_path / f"{name}-{p}.npz" for p in ("top1", "all")]
        encode_stage(
            tmp_path / "model", tiny_collection, "corpus", ["top1", "all"], outputs[name], prefix=prefix, device="cpu"
        )
    for cached, text in zip(outputs["cached"], outputs["text"]):
        a, b = Encoded.load(cached), Encoded.load(text)
        assert a.ids == b.ids and np.array_equal(a.experts, b.experts)
        assert np.abs(a.embeddings - b.embeddings).max() < 1e-5
    # a cache of any depth up to the layers left frozen serves: here the embeddings' (train_layers 2)
    prefix_stage(tmp_path / "base", tiny_collection, "corpus", tmp_path / "corpus-top2", 2, device="cpu")
    encode_stage(
        tmp_path / "model",
        tiny_collection,
        "corpus",
        ["top1"],
        [tmp_path / "from-0.npz"],
        prefix=tmp_path / "corpus-top2",
        device="cpu",
    )
    assert (
        np.abs(Encoded.load(tmp_path / "from-0.npz").embeddings - Encoded.load(outputs["text"][0]).embeddings).max()
        < 1e-5
    )


def test_a_partially_trained_model_reloads_to_bit_identical_embeddings(tmp_path, data):
    model = _tiny("sbmoe", num_experts=3, combination="learned")
    train(model, data.corpus, data.queries, data.qrels, _config(), progress=False)
    cache = compute_prefix(model.encoder, IDS, TEXTS, "doc", 1, tmp_path / "cache", progress=False)
    before = {p: model.encode(TEXTS, "doc", p, progress=False) for p in ("top1", "all")}
    before_cached = model.pool_prefix(cache, progress=False)
    model.save(tmp_path / "model")
    reloaded = Retriever.load(tmp_path / "model")
    assert reloaded.config.frozen_layers == 1
    for pooling, encoded in before.items():
        again = reloaded.encode(TEXTS, "doc", pooling, progress=False)
        assert np.array_equal(again.embeddings, encoded.embeddings) and np.array_equal(again.experts, encoded.experts)
    assert torch.equal(reloaded.pool_prefix(cache, progress=False), before_cached)
