"""The variant registry: a new variant is one registry entry (and, for a new block, one module of
sbmoe.models); its names, wildcard pattern, poolings, label, row order, study entries, schema
validation, model building and training follow without any other edit."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from jsonschema import Draft202012Validator

from sbmoe.io.collection import Collection
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.systems.labels import display_label, system_order
from sbmoe.systems.names import (
    parse_system,
    poolings,
    study_systems,
    system_name,
    system_settings,
    trained_system_pattern,
    variant_of,
)
from sbmoe.systems.registry import (
    VARIANTS,
    Variant,
    register,
    trained_variants,
    unregister,
)
from sbmoe.training.config import TrainConfig
from sbmoe.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TEXTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10", "w11 w12", "w13 w14 w15 w16"]
# SB-MoE's block under another name: the behaviour of an existing block, reached only through the entry
TWIN = Variant(
    "twin-gate",
    "Twin gate",
    6,
    parts=("combination", "experts"),
    keys={"combination": "paper", "experts": None},
    poolings=("top1", "all"),
    block="moe:learned_gate_block",
)


@pytest.fixture
def twin():
    register(TWIN)
    yield TWIN
    unregister(TWIN.name)


def test_a_registered_variant_is_named_parsed_labelled_and_ordered(twin):
    name = system_name("twin-gate", "learned", 4, overrides={"moe_lr": 1e-3})
    assert name == "twin-gate-learned-e4-mlr1e-3"
    assert system_settings(name) == {
        "variant": "twin-gate",
        "combination": "learned",
        "num_experts": 4,
        "top_k": None,
        "overrides": {"moe_lr": 1e-3},
    }
    assert parse_system("twin-gate-paper-e4") == {"variant": "twin-gate", "combination": "paper", "num_experts": 4}
    assert re.fullmatch(trained_system_pattern(), name) and not re.fullmatch(trained_system_pattern(), "twin-gate-e4")
    assert poolings(name) == ("top1", "all") and variant_of(name).gated
    assert display_label(name, "all") == "Twin gate ALL E=4 (learned gate) (MoE lr 1e-3)"
    assert display_label("twin-gate-paper-e4", "top1", experts=False) == "Twin gate TOP-1"
    with pytest.raises(ValueError, match="needs pooling top1 or all"):
        display_label("twin-gate-paper-e4")
    rows = ["twin-gate-paper-e4", "regular-moe-e4-k2", "sbmoe-paper-e6", "twin-gate-learned-e4", "finetune"]
    assert sorted(rows, key=lambda s: system_order(s, "top1")) == [
        "finetune",
        "sbmoe-paper-e6",
        "regular-moe-e4-k2",
        "twin-gate-paper-e4",
        "twin-gate-learned-e4",
    ]
    with pytest.raises(ValueError, match="not a system name"):
        system_settings("twin-gate-e4")


def test_a_registered_variant_is_a_study_entry_the_schema_accepts(twin):
    systems = study_systems(
        [{"variant": "finetune"}, {"variant": "twin-gate", "combination": "learned", "experts": [3, 4]}]
    )
    assert list(systems) == ["finetune", "twin-gate-learned-e3", "twin-gate-learned-e4"]
    assert systems["twin-gate-learned-e4"]["model"] == {
        "variant": "twin-gate",
        "combination": "learned",
        "num_experts": 4,
    }
    with pytest.raises(ValueError, match=r"^systems\[0\]\.top_k: variant 'twin-gate' does not take 'top_k'"):
        study_systems([{"variant": "twin-gate", "experts": [3], "top_k": 2}])
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config["systems"].append({"variant": "twin-gate", "experts": [3]})
    Draft202012Validator(yaml.safe_load(SCHEMA.read_text())).validate(config)


def test_a_registered_variant_builds_encodes_saves_and_loads(twin, encoder_config, tmp_path):
    config = ModelConfig(encoder=encoder_config(), variant="twin-gate", num_experts=3, combination="learned", seed=5)
    model = Retriever(config)
    assert config.system == "twin-gate-learned-e3" and config.poolings == ("top1", "all") and config.has_gate
    reference = Retriever(
        ModelConfig(encoder=encoder_config(), variant="sbmoe", num_experts=3, combination="learned", seed=5)
    )
    for pooling in config.poolings:
        encoded = model.encode(TEXTS, "doc", pooling, progress=False)
        assert encoded.embeddings.shape == (len(TEXTS), 32) and encoded.gate.shape == (len(TEXTS), 3)
        same = reference.encode(TEXTS, "doc", pooling, progress=False)  # the same block, seed and weights
        np.testing.assert_array_equal(encoded.embeddings, same.embeddings)
        np.testing.assert_array_equal(encoded.experts, same.experts)
    model.save(tmp_path / "model")
    loaded = Retriever.load(tmp_path / "model")
    assert loaded.config.system == "twin-gate-learned-e3"
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_a_registered_variant_trains_as_its_block_does(twin, encoder_config, tiny_collection):
    data = Collection.load(tiny_collection, "train")
    config = TrainConfig(epochs=2, batch_size=8, moe_lr=2e-2, valid_fraction=0.2, train_layers=0, seed=7)
    logs, states = [], []
    for name in ("twin-gate", "sbmoe"):
        model = Retriever(ModelConfig(encoder=encoder_config(), variant=name, num_experts=3, combination="learned"))
        result = train(model, data.corpus, data.queries, data.qrels, config, progress=False)
        logs.append([{k: v for k, v in entry.items() if k != "seconds"} for entry in result.log])
        states.append(model.moe.state_dict())
    assert logs[0] == logs[1] and all(entry["gate_grad_norm"] > 0 for entry in logs[0])
    for name, tensor in states[1].items():
        assert torch.equal(states[0][name], tensor), name


def test_a_block_name_that_names_nothing_is_an_error(encoder_config):
    register(Variant("lost-block", "Lost", 7, block="moe:no_such_block"))
    try:
        with pytest.raises(ValueError, match="block 'moe:no_such_block': module sbmoe.models.moe has no function"):
            Retriever(ModelConfig(encoder=encoder_config(), variant="lost-block"))
    finally:
        unregister("lost-block")
    with pytest.raises(ValueError, match="already registered"):
        register(Variant("sbmoe", "SB-MoE", 4))
    with pytest.raises(ValueError, match="its names state \\['experts'\\]"):
        Variant("half", "Half", 8, parts=("experts",))


def test_the_schema_follows_the_registry():
    """The schema names no variant list of its own (the study's check refuses unknown variants and keys
    by the registry), and it types every key a built-in variant takes."""
    items = yaml.safe_load(SCHEMA.read_text())["properties"]["systems"]["items"]
    assert "enum" not in items["properties"]["variant"] and items.get("additionalProperties", True) is not False
    taken = {key for name in trained_variants() for key in VARIANTS[name].accepted()}
    assert set(items["properties"]) == taken
    config = copy.deepcopy(yaml.safe_load((ROOT / "config" / "ci.yaml").read_text()))
    with pytest.raises(ValueError, match=r"systems\[1\]\.variant: 'sbmoee' is not a variant"):
        study_systems([{"variant": "finetune"}, {"variant": "sbmoee", "experts": [3]}])
    Draft202012Validator(yaml.safe_load(SCHEMA.read_text())).validate(config)
