"""Reading a model-and-training configuration (YAML or JSON) into the library's dataclasses.

The file has three sections and a seed::

    encoder:  {name_or_path, pooling, normalize, query_max_length, doc_max_length, lowercase}
    model:    {variant, num_experts, combination, top_k, moe_layers}
    training: {epochs, batch_size, encoder_lr, moe_lr, temperature, train_layers, ...}
    seed: 42

An unknown or ill-typed key is an error that names it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sbmoe.io.errors import DataFormatError, InputError, read_yaml
from sbmoe.models.encoder import EncoderConfig, model_path_problem
from sbmoe.models.retriever import ModelConfig
from sbmoe.training.config import TrainConfig


class ConfigError(InputError):
    """A configuration key that is unknown or has an invalid value."""


def _typed(cls, values: dict | None, section: str, source: str) -> dict:
    """``values`` with unknown keys and values of the wrong type reported by name; a float key takes
    an int, or a string such as ``1e-6`` (which YAML 1.1 does not read as a number)."""
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{source}: '{section}' must be a mapping, got {values!r}")
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{section}.{key}' (expected one of {sorted(known)})")
        default = known[key].default
        if isinstance(default, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                values[key] = value = float(value)
            except ValueError:
                pass
        union = [name.strip() for name in str(known[key].type).split("|")]  # e.g. train_layers: int | str
        if len(union) > 1:
            if isinstance(value, bool) or type(value).__name__ not in union:
                raise ConfigError(f"{source}: '{section}.{key}' must be of type {' or '.join(union)}, got {value!r}")
        elif default not in (dataclasses.MISSING, None) and type(value) is not type(default):
            raise ConfigError(f"{source}: '{section}.{key}' must be of type {type(default).__name__}, got {value!r}")
    return values


def _build(cls, values: dict | None, section: str, source: str):
    values = _typed(cls, values, section, source)
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
    if isinstance(data.get("training"), dict) and "seed" in data["training"]:
        raise ConfigError(f"{source}: unknown key 'training.seed' (the seed is the top-level key 'seed')")
    seed = data.get("seed", 42)
    if type(seed) is not int:
        raise ConfigError(f"{source}: 'seed' must be an integer, got {seed!r}")
    encoder = _build(EncoderConfig, data["encoder"], "encoder", source)
    problem = model_path_problem(encoder.name_or_path)
    if problem:
        raise ConfigError(f"{source}: 'encoder.name_or_path': {encoder.name_or_path!r}: {problem}")
    model_values = {**_typed(ModelConfig, data.get("model"), "model", source), "seed": seed}
    model_values["encoder"] = encoder
    known = {f.name for f in dataclasses.fields(ModelConfig)} - {"encoder", "seed", "encoder_trained", "frozen_layers"}
    for key in data.get("model") or {}:
        if key not in known:
            raise ConfigError(f"{source}: unknown key 'model.{key}' (expected one of {sorted(known)})")
    try:
        model = ModelConfig(**model_values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: invalid 'model': {error}") from None
    training = _build(
        TrainConfig, {**_typed(TrainConfig, data.get("training"), "training", source), "seed": seed}, "training", source
    )
    return model, training


def load_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    path = Path(path)
    try:
        data = read_yaml(path, "a configuration in YAML or JSON with encoder, model, training, seed")
    except DataFormatError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections encoder, model, training")
    return build_configs(data, str(path))
