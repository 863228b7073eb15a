"""Reading a model-and-training configuration (YAML or JSON) into the library's dataclasses.

The file has three sections and a seed::

    encoder:  {name_or_path, pooling, normalize, query_max_length, doc_max_length, lowercase}
    model:    {variant, num_experts, combination}
    training: {epochs, batch_size, encoder_lr, moe_lr, temperature, freeze_encoder, ...}
    seed: 42

An unknown or ill-typed key is an error that names it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from .encoder import EncoderConfig
from .model import ModelConfig
from .training import TrainConfig


class ConfigError(ValueError):
    """A configuration key that is unknown or has an invalid value."""


def _build(cls, values: dict | None, section: str, source: str):
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{section}.{key}' (expected one of {sorted(known)})")
        if isinstance(known[key].default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: invalid '{section}': {error}") from None


def build_configs(data: dict, source: str = "config") -> tuple[ModelConfig, TrainConfig]:
    """Turn a parsed configuration into a (model, training) pair; the seed goes to both."""
    unknown = set(data) - {"encoder", "model", "training", "seed"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} (expected encoder, model, training, seed)")
    if "encoder" not in data or "name_or_path" not in (data["encoder"] or {}):
        raise ConfigError(f"{source}: missing key 'encoder.name_or_path'")
    seed = int(data.get("seed", 42))
    encoder = _build(EncoderConfig, data["encoder"], "encoder", source)
    model_values = {**(data.get("model") or {}), "seed": seed}
    model_values["encoder"] = encoder
    known = {f.name for f in dataclasses.fields(ModelConfig)} - {"encoder", "seed", "encoder_trained"}
    for key in data.get("model") or {}:
        if key not in known:
            raise ConfigError(f"{source}: unknown key 'model.{key}' (expected one of {sorted(known)})")
    try:
        model = ModelConfig(**model_values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: invalid 'model': {error}") from None
    training = _build(TrainConfig, {**(data.get("training") or {}), "seed": seed}, "training", source)
    return model, training


def load_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML/JSON ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections encoder, model, training")
    return build_configs(data, str(path))
