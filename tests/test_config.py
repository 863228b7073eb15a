"""Reading a YAML configuration into the encoder, model and training dataclasses."""

from __future__ import annotations

import pytest

from sbmoe.models.encoder import EncoderConfig
from sbmoe.models.retriever import ModelConfig
from sbmoe.pipeline.config import ConfigError, build_configs, load_config
from sbmoe.training.config import TrainConfig

YAML = """\
encoder:
  name_or_path: google/bert_uncased_L-4_H-512_A-8
  pooling: cls
  normalize: false
  query_max_length: 64
  doc_max_length: 256
  lowercase: true
model:
  variant: sbmoe
  num_experts: 9
  combination: learned
training:
  epochs: 20
  batch_size: 64
  encoder_lr: 1e-6
  moe_lr: 1.0e-4
  temperature: 1
  train_layers: 2
  balance_coef: 0.01
  patience: 3
seed: 7
"""


def _write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_builds_the_dataclasses(tmp_path):
    model, training = load_config(_write(tmp_path, YAML))
    assert isinstance(model, ModelConfig) and isinstance(training, TrainConfig)
    assert model.encoder == EncoderConfig(
        name_or_path="google/bert_uncased_L-4_H-512_A-8",
        pooling="cls",
        normalize=False,
        query_max_length=64,
        doc_max_length=256,
        lowercase=True,
    )
    assert (model.variant, model.num_experts, model.combination, model.seed) == ("sbmoe", 9, "learned", 7)
    assert model.system == "sbmoe-learned-e9"
    assert training.epochs == 20 and training.batch_size == 64
    assert training.encoder_lr == 1e-6 and isinstance(training.encoder_lr, float)  # YAML reads 1e-6 as a string
    assert training.moe_lr == 1e-4
    assert training.temperature == 1.0 and isinstance(training.temperature, float)
    assert training.train_layers == 2 and training.balance_coef == 0.01 and training.patience == 3
    assert training.seed == 7  # the seed goes to both
    assert training.weight_decay == 0.01 and training.valid_fraction == 0.05  # defaults: the authors'


def test_defaults_and_json(tmp_path):
    model, training = load_config(_write(tmp_path, '{"encoder": {"name_or_path": "enc"}}', "config.json"))
    assert model.variant == "finetune" and model.seed == 42 and model.encoder.pooling == "mean"
    assert training == TrainConfig(seed=42)


@pytest.mark.parametrize(
    "section,key", [("training", "learning_rate"), ("encoder", "max_length"), ("model", "experts")]
)
def test_unknown_key_is_named(tmp_path, section, key):
    data = {"encoder": {"name_or_path": "enc"}}
    data.setdefault(section, {})[key] = 1
    with pytest.raises(ConfigError, match=f"unknown key '{section}.{key}'") as caught:
        build_configs(data, "my.yaml")
    assert str(caught.value).startswith("my.yaml: ")


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match="optimizer"):
        load_config(_write(tmp_path, YAML + "optimizer: {name: adamw}\n"))


def test_negative_learning_rate_names_the_key(tmp_path):
    path = _write(tmp_path, YAML.replace("moe_lr: 1.0e-4", "moe_lr: -1.0e-4"))
    with pytest.raises(ConfigError, match="moe_lr") as caught:
        load_config(path)
    assert str(path) in str(caught.value) and "positive" in str(caught.value)
    with pytest.raises(ConfigError, match="encoder_lr"):
        load_config(_write(tmp_path, YAML.replace("encoder_lr: 1e-6", "encoder_lr: -1e-6")))


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("epochs: 20", "epochs: twenty", "training.epochs"),
        ("epochs: 20", "epochs: 2.5", "training.epochs"),
        ("moe_lr: 1.0e-4", "moe_lr: fast", "training.moe_lr"),
        ("train_layers: 2", "train_layers: [2]", "training.train_layers"),
        ("num_experts: 9", "num_experts: nine", "model.num_experts"),
        ("query_max_length: 64", "query_max_length: '64'", "encoder.query_max_length"),
        ("seed: 7", "seed: seven", "seed"),
    ],
)
def test_ill_typed_key_is_named(tmp_path, old, new, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(_write(tmp_path, YAML.replace(old, new)))


def test_invalid_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="variant"):
        load_config(_write(tmp_path, YAML.replace("variant: sbmoe", "variant: dense")))
    with pytest.raises(ConfigError, match="pooling"):
        load_config(_write(tmp_path, YAML.replace("pooling: cls", "pooling: max")))
    for bad in ("some", "-1"):
        with pytest.raises(ConfigError, match="train_layers must be 'all' or a number of layers"):
            load_config(_write(tmp_path, YAML.replace("train_layers: 2", f"train_layers: {bad}")))
    assert load_config(_write(tmp_path, YAML.replace("train_layers: 2", "train_layers: all")))[1].train_layers == "all"
    with pytest.raises(ConfigError, match="encoder.name_or_path"):
        build_configs({"encoder": {"pooling": "mean"}})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "encoder: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a list\n"))
    with pytest.raises(ConfigError, match="'training' must be a mapping"):
        build_configs({"encoder": {"name_or_path": "enc"}, "training": 5})
