"""Contrastive training: the loss, what the gate learns under each combination, the checkpoint kept,
early stopping, determinism, the log, and the cached frozen-encoder path."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from sbmoe.io.collection import Collection
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.training import trainer as training
from sbmoe.training.config import TrainConfig
from sbmoe.training.examples import info_nce, sample_positives
from sbmoe.training.trainer import train

LOG_FIELDS = {
    "epoch",
    "loss",
    "val_loss",
    "gate_grad_norm",
    "routing_entropy",
    "expert_load",
    "layer_routing",
    "seconds",
    "best",
}


@pytest.fixture(scope="module")
def data(tiny_collection):
    return Collection.load(tiny_collection, "train")


def _model(encoder_config, variant="sbmoe", combination="learned", num_experts=3, seed=42):
    return Retriever(
        ModelConfig(
            encoder=encoder_config(), variant=variant, combination=combination, num_experts=num_experts, seed=seed
        )
    )


def _config(**overrides):
    values = dict(epochs=3, batch_size=8, encoder_lr=1e-4, moe_lr=1e-2, valid_fraction=0.2, seed=7)
    values.update(overrides)
    return TrainConfig(**values)


def _train(model, data, config, **kwargs):
    return train(model, data.corpus, data.queries, data.qrels, config, progress=False, **kwargs)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _without_seconds(log):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in log]


# --- the loss -----------------------------------------------------------------------------------


def test_info_nce_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # scores q.d: row 1 (3, 1), positive 3; row 2 (0, 1), positive 1
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert float(info_nce(q, d, 1.0)) == pytest.approx(expected, rel=1e-6)
    # the temperature divides the query embeddings: scores (6, 2) and (0, 2)
    expected = (math.log(1 + math.exp(-4)) + math.log(1 + math.exp(-2))) / 2
    assert float(info_nce(q, d, 0.5)) == pytest.approx(expected, rel=1e-6)
    # distinct documents: the ids change nothing
    assert float(info_nce(q, d, 1.0, ["a", "b"])) == pytest.approx(float(info_nce(q, d, 1.0)))


def test_info_nce_masks_duplicate_positives():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # both queries have document "a": neither batch copy is a negative of the other, the loss is zero
    assert float(info_nce(q, d, 1.0, ["a", "a"])) == pytest.approx(0.0, abs=1e-7)
    q3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d3 = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # scores: row 1 (2, 0, 1), row 2 (0, 1, 0), row 3 (2, 1, 1); queries 1 and 3 share document "a"
    row1 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))  # column 3 masked
    row2 = -math.log(math.exp(1) / (math.exp(0) + math.exp(1) + math.exp(0)))
    row3 = -math.log(math.exp(1) / (math.exp(1) + math.exp(1)))  # column 1 masked
    loss = float(info_nce(q3, d3, 1.0, ["a", "b", "a"]))
    assert loss == pytest.approx((row1 + row2 + row3) / 3, rel=1e-6)
    assert loss < float(info_nce(q3, d3, 1.0))


def test_sample_positives_skips_unjudged_grades():
    qrels = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 0}, "q3": {"d4": 2, "d5": 1}}
    examples = sample_positives(qrels, random.Random(0))
    assert [e.qid for e in examples] == ["q1", "q3"]
    assert examples[0].doc_id == "d1" and examples[1].doc_id in ("d4", "d5")
    drawn = {sample_positives(qrels, random.Random(s))[1].doc_id for s in range(20)}
    assert drawn == {"d4", "d5"}


def test_train_config_validation():
    with pytest.raises(ValueError, match="moe_lr"):
        TrainConfig(moe_lr=-1e-4)
    with pytest.raises(ValueError, match="valid_fraction"):
        TrainConfig(valid_fraction=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


# --- the gate under each combination ------------------------------------------------------------


def test_learned_combination_trains_the_gate(encoder_config, data):
    model = _model(encoder_config, combination="learned", num_experts=3)
    gate_before = _state(model.moe.gate)
    result = _train(model, data, _config(epochs=4, train_layers=0, moe_lr=2e-2))
    gate_after = _state(model.moe.gate)
    moved = [k for k in gate_before if not torch.equal(gate_before[k], gate_after[k])]
    assert set(moved) == set(gate_before)  # every gate weight moved, the noise layer too
    assert all(entry["gate_grad_norm"] > 1e-4 for entry in result.log)
    for entry in result.log:  # more than one expert is used in training
        assert sum(share > 0 for share in entry["expert_load"]) > 1
        assert sum(entry["expert_load"]) == pytest.approx(1.0)
        assert 0 < entry["routing_entropy"] <= math.log(3) + 1e-9


def test_balance_loss_spreads_the_learned_routing(encoder_config, data):
    """On the tiny problem (a random frozen encoder, whose pooled vectors are much alike) a learned
    gate alone collapses onto one expert; with the load-balancing loss it routes to several."""
    texts = [data.queries[q] for q in data.queries]
    used, entropy = {}, {}
    for coef in (0.0, 0.5):
        model = _model(encoder_config, combination="learned", num_experts=3)
        result = _train(model, data, _config(epochs=10, train_layers=0, moe_lr=2e-2, balance_coef=coef))
        used[coef] = set(model.encode(texts, "query", "top1", progress=False).experts.tolist())
        entropy[coef] = result.log[-1]["routing_entropy"]
    assert len(used[0.5]) > 1
    assert entropy[0.5] > entropy[0.0] + 0.3


def test_paper_combination_leaves_the_gate_at_its_initialisation(encoder_config, data):
    model = _model(encoder_config, combination="paper", num_experts=3)
    gate_before = _state(model.moe.gate)
    experts_before = _state(model.moe.experts)
    result = _train(model, data, _config(epochs=3, train_layers=0, moe_lr=2e-2))
    _assert_states_equal(_state(model.moe.gate), gate_before)
    # the experts did learn, and the gate's gradient was (numerically) zero
    assert any(not torch.equal(v, _state(model.moe.experts)[k]) for k, v in experts_before.items())
    assert all(0 <= entry["gate_grad_norm"] < 1e-5 for entry in result.log)


def test_balance_loss_does_not_apply_to_the_paper_combination(encoder_config, data):
    """The study's configurations set one balance coefficient for all systems; the paper's combination
    stays faithful (no balance loss, the gate at its initialisation) whatever its value."""
    runs = {}
    for coef in (0.0, 0.1):
        model = _model(encoder_config, combination="paper", num_experts=3)
        gate_before = _state(model.moe.gate)
        result = _train(model, data, _config(epochs=2, train_layers=0, balance_coef=coef))
        _assert_states_equal(_state(model.moe.gate), gate_before)
        assert all(entry["gate_grad_norm"] < 1e-5 for entry in result.log)
        runs[coef] = (_without_seconds(result.log), _state(model.moe))
    assert runs[0.0][0] == runs[0.1][0]
    _assert_states_equal(runs[0.0][1], runs[0.1][1])


def test_random_gate_and_adapter_train(encoder_config, data):
    for variant, experts in (("random-gate", 3), ("adapter", 1)):
        model = _model(encoder_config, variant=variant, num_experts=experts)
        before = _state(model.moe)
        result = _train(model, data, _config(epochs=1, train_layers=0))
        assert any(not torch.equal(v, model.moe.state_dict()[k]) for k, v in before.items())
        assert result.log[0]["gate_grad_norm"] is None
        if variant == "adapter":
            assert result.log[0]["expert_load"] is None and result.log[0]["routing_entropy"] is None
        else:
            assert len(result.log[0]["expert_load"]) == 3


def test_frozen_finetune_has_nothing_to_train(encoder_config, data, tmp_path):
    model = _model(encoder_config, variant="finetune")
    before = _state(model)
    result = _train(model, data, _config(train_layers=0), log_path=tmp_path / "log.jsonl")
    _assert_states_equal(_state(model), before)
    assert model.config.encoder_trained is False
    assert len(result.log) == 1 and result.log[0]["best"] is True
    assert json.loads((tmp_path / "log.jsonl").read_text())["epoch"] == 0


# --- the checkpoint kept, early stopping ------------------------------------------------------


def _recording_validation(monkeypatch, losses=None):
    """Record the model's state at every validation; optionally replace the validation losses."""
    states, real = [], training._validation_loss
    scripted = iter(losses) if losses is not None else None

    def validation(model, texts, examples, config):
        value = real(model, texts, examples, config)
        states.append(_state(model))
        return next(scripted) if scripted is not None else value

    monkeypatch.setattr(training, "_validation_loss", validation)
    return states


def test_best_validation_checkpoint_is_kept(monkeypatch, encoder_config, data):
    states = _recording_validation(monkeypatch, [3.0, 1.0, 2.0, 4.0])
    model = _model(encoder_config, combination="learned")
    result = _train(model, data, _config(epochs=4))
    assert [e["best"] for e in result.log] == [True, True, False, False]
    assert result.best_epoch == 2 and result.best_val_loss == 1.0
    assert len(states) == 4
    _assert_states_equal(_state(model), states[1])
    assert any(not torch.equal(v, states[3][k]) for k, v in states[1].items())  # the last epoch differed


def test_best_flag_follows_the_real_validation_loss(monkeypatch, encoder_config, data):
    states = _recording_validation(monkeypatch)
    model = _model(encoder_config, combination="learned")
    result = _train(model, data, _config(epochs=4, encoder_lr=3e-3, moe_lr=5e-2))
    best_so_far = math.inf
    for entry in result.log:
        assert entry["best"] == (entry["val_loss"] < best_so_far)
        best_so_far = min(best_so_far, entry["val_loss"])
    best = [e["epoch"] for e in result.log if e["best"]][-1]
    assert result.best_epoch == best and result.best_val_loss == best_so_far
    _assert_states_equal(_state(model), states[best - 1])


def test_early_stopping_with_patience(monkeypatch, encoder_config, data):
    states = _recording_validation(monkeypatch, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    model = _model(encoder_config, combination="learned")
    result = _train(model, data, _config(epochs=6, patience=2, train_layers=0))
    assert [e["epoch"] for e in result.log] == [1, 2, 3]
    assert result.best_epoch == 1
    _assert_states_equal(_state(model.moe), {k[len("moe.") :]: v for k, v in states[0].items() if k.startswith("moe.")})


def test_no_patience_runs_every_epoch(monkeypatch, encoder_config, data):
    _recording_validation(monkeypatch, [1.0, 2.0, 3.0, 4.0])
    result = _train(_model(encoder_config), data, _config(epochs=4, patience=0, train_layers=0))
    assert len(result.log) == 4


# --- determinism and the log -------------------------------------------------------------------


def test_same_config_and_seed_give_identical_runs(encoder_config, data, tmp_path):
    runs = []
    for attempt in range(2):
        model = _model(encoder_config, combination="learned")
        result = _train(model, data, _config(epochs=2), log_path=tmp_path / f"log{attempt}.jsonl")
        runs.append((result, _state(model)))
    (first, first_state), (second, second_state) = runs
    assert _without_seconds(first.log) == _without_seconds(second.log)
    _assert_states_equal(first_state, second_state)
    lines = [[json.loads(line) for line in (tmp_path / f"log{i}.jsonl").read_text().splitlines()] for i in range(2)]
    assert _without_seconds(lines[0]) == _without_seconds(lines[1])
    # another seed gives another run
    model = _model(encoder_config, combination="learned")
    other = _train(model, data, _config(epochs=2, seed=8))
    assert [e["loss"] for e in other.log] != [e["loss"] for e in first.log]


def test_log_has_the_documented_fields(encoder_config, data, tmp_path):
    log = tmp_path / "train.jsonl"
    result = _train(_model(encoder_config), data, _config(epochs=2), log_path=log)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 2
    for epoch, entry in enumerate(entries, start=1):
        assert set(entry) == LOG_FIELDS
        assert entry["epoch"] == epoch
        assert entry["loss"] > 0 and entry["val_loss"] > 0 and entry["seconds"] >= 0
        assert isinstance(entry["best"], bool)
        assert entry["gate_grad_norm"] > 0
        assert len(entry["expert_load"]) == 3 and sum(entry["expert_load"]) == pytest.approx(1.0)
    assert _without_seconds(entries) == _without_seconds(json.loads(json.dumps(result.log)))
    assert entries[0]["best"] is True


def test_training_moves_the_encoder_unless_frozen(encoder_config, data):
    model = _model(encoder_config, variant="finetune")
    before = _state(model.encoder)
    _train(model, data, _config(epochs=1))
    assert model.config.encoder_trained is True
    assert any(not torch.equal(v, model.encoder.state_dict()[k]) for k, v in before.items())


def test_validation_needs_queries(encoder_config, data):
    with pytest.raises(ValueError, match="validation"):
        _train(_model(encoder_config), data, _config(), valid_qrels={"q0": {"d0": 1}})
    valid = {q: data.qrels[q] for q in ("q1", "q2", "q3")}
    result = _train(_model(encoder_config), data, _config(epochs=1), valid_qrels=valid)
    assert result.best_epoch == 1


# --- the frozen encoder, with and without the pooled cache -------------------------------------


def test_cached_frozen_encoder_equals_uncached(encoder_config, data):
    results, states = [], []
    for cache in (True, False):
        model = _model(encoder_config, combination="learned")
        encoder_before = _state(model.encoder)
        result = _train(model, data, _config(epochs=3, train_layers=0, cache_frozen=cache))
        _assert_states_equal(_state(model.encoder), encoder_before)  # the encoder did not move
        assert model.config.encoder_trained is False
        results.append(result)
        states.append(_state(model.moe))
    cached, uncached = results
    assert [e["epoch"] for e in cached.log] == [e["epoch"] for e in uncached.log]
    for a, b in zip(cached.log, uncached.log):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["best"] == b["best"] and a["expert_load"] == b["expert_load"]
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], atol=1e-5, rtol=0)
    assert cached.best_epoch == uncached.best_epoch


def test_supplied_pooled_cache(encoder_config, data):
    model = _model(encoder_config, combination="learned")
    qids = sorted(data.qrels)
    doc_ids = sorted({d for docs in data.qrels.values() for d in docs})
    from sbmoe.io.collection import document_text

    pooled = {
        "query": (qids, model.encoder.pool([data.queries[q] for q in qids], "query", progress=False)),
        "doc": (doc_ids, model.encoder.pool([document_text(data.corpus[d]) for d in doc_ids], "doc", progress=False)),
    }
    supplied = _train(model, data, _config(epochs=2, train_layers=0), pooled=pooled)
    own = _train(_model(encoder_config, combination="learned"), data, _config(epochs=2, train_layers=0))
    for a, b in zip(supplied.log, own.log):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    with pytest.raises(ValueError, match="train_layers"):
        _train(_model(encoder_config), data, _config(epochs=1), pooled=pooled)
    partial = {"query": (qids[:5], pooled["query"][1][:5]), "doc": pooled["doc"]}
    with pytest.raises(KeyError, match="cached pooled"):
        _train(_model(encoder_config), data, _config(epochs=1, train_layers=0), pooled=partial)
