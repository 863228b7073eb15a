"""One defaults table: the configuration schema's ``default:`` values are the study's defaults, the
library's keyword and dataclass defaults for the same settings agree with them, and a configuration
file that sets a value other than the default says why on that line."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from sbmoe.analysis.figures.tsne import tsne_figure
from sbmoe.data.datasets import write_validation_split
from sbmoe.evaluation import significance
from sbmoe.evaluation.metrics import METRICS, evaluate
from sbmoe.evaluation.results import REPORTED_METRICS
from sbmoe.models.encoder import EncoderConfig
from sbmoe.models.retriever import ModelConfig
from sbmoe.pipeline.stages import encode_stage, pool_stage, prefix_stage, search_stage
from sbmoe.retrieval import bm25, fusion
from sbmoe.retrieval.search import search
from sbmoe.selection.comparison import significance_against_best_single
from sbmoe.selection.router import RouterConfig
from sbmoe.selection.routing import route_stage, train_router_stage
from sbmoe.systems.registry import VARIANTS
from sbmoe.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "config").glob("*.yaml"))]


def field(cls, name: str):
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    return found.default_factory() if found.default is dataclasses.MISSING else found.default


def keyword(function, name: str):
    return inspect.signature(function).parameters[name].default


def _fields_of(cls, prefix: tuple[str, ...], names) -> dict:
    return {(*prefix, name): [(f"{cls.__name__}.{name}", field(cls, name))] for name in names}


# schema path ("*": any key of a mapping) -> the library's defaults of the same setting
LIBRARY = {
    **_fields_of(
        EncoderConfig, ("encoders", "*"), ["pooling", "normalize", "query_max_length", "doc_max_length", "lowercase"]
    ),
    **_fields_of(
        TrainConfig,
        ("training",),
        [
            "epochs",
            "batch_size",
            "encoder_lr",
            "moe_lr",
            "weight_decay",
            "temperature",
            "valid_fraction",
            "patience",
            "train_layers",
            "balance_coef",
            "router_balance_coef",
            "mixed_precision",
        ],
    ),
    ("datasets", "valid_fraction"): [("write_validation_split(fraction)", keyword(write_validation_split, "fraction"))],
    ("datasets", "split_seed"): [("write_validation_split(seed)", keyword(write_validation_split, "seed"))],
    ("encoding", "batch_size"): [("TrainConfig.encode_batch_size", field(TrainConfig, "encode_batch_size"))]
    + [(f"{f.__name__}(batch_size)", keyword(f, "batch_size")) for f in (pool_stage, prefix_stage, encode_stage)],
    ("search", "k"): [
        (f"{f.__module__}.{f.__name__}(k)", keyword(f, "k"))
        for f in (search, search_stage, bm25.retrieve, bm25.bm25_stage, route_stage, fusion.fuse)
    ],
    ("significance", "test"): [
        (f"{f.__name__}(test)", keyword(f, "test"))
        for f in (
            significance.paired_test,
            significance.compare_to_baseline,
            significance.significance_report,
            significance_against_best_single,
        )
    ],
    ("significance", "permutations"): [("DEFAULT_PERMUTATIONS", significance.DEFAULT_PERMUTATIONS)]
    + [
        (f"{f.__name__}(permutations)", keyword(f, "permutations"))
        for f in (
            significance.randomization_test,
            significance.paired_test,
            significance.compare_to_baseline,
            significance.significance_report,
            significance_against_best_single,
        )
    ],
    ("significance", "correction"): [
        (f"{f.__name__}(correction)", keyword(f, "correction"))
        for f in (significance.compare_to_baseline, significance.significance_report, significance_against_best_single)
    ]
    + [("correct(method)", keyword(significance.correct, "method"))],
    ("significance", "alpha"): [
        (f"{f.__name__}(alpha)", keyword(f, "alpha"))
        for f in (significance.compare_to_baseline, significance.significance_report, significance_against_best_single)
    ],
    ("evaluation", "metrics"): [("METRICS", list(METRICS)), ("evaluate(metrics)", list(keyword(evaluate, "metrics")))],
    ("analysis", "metrics"): [("REPORTED_METRICS", list(REPORTED_METRICS))]
    + [("significance_against_best_single(metrics)", list(keyword(significance_against_best_single, "metrics")))],
    ("analysis", "tsne", "query_seed"): [("tsne_figure(seed)", keyword(tsne_figure, "seed"))],
    ("routing", "wsum_step"): [
        ("tune_wsum(step)", keyword(fusion.tune_wsum, "step")),
        ("train_router_stage(fusion_step)", keyword(train_router_stage, "fusion_step")),
    ],
    ("routing", "bm25", "stemmer"): [
        ("BM25Config.stemmer", field(bm25.BM25Config, "stemmer")),
        ("build_index(stemmer)", keyword(bm25.build_index, "stemmer")),
    ],
    ("routing", "bm25", "k1"): [("BM25Config.k1", field(bm25.BM25Config, "k1"))]
    + [(f"{f.__name__}(k1)", keyword(f, "k1")) for f in (bm25.bm25_retriever, bm25.retrieve)],
    ("routing", "bm25", "b"): [("BM25Config.b", field(bm25.BM25Config, "b"))]
    + [(f"{f.__name__}(b)", keyword(f, "b")) for f in (bm25.bm25_retriever, bm25.retrieve)],
    **_fields_of(RouterConfig, ("routing", "router"), ["hidden", "epochs", "lr", "l2", "folds", "features", "seed"]),
}
# defaults of the pipeline's own choices, with no library function behind them (why, for each)
PIPELINE_ONLY = {
    ("zeroshot",): "whether the study evaluates the untrained encoders (rules/common.smk)",
    ("zero_shot",): "the study's design: no zero-shot test sets unless listed",
    ("datasets", "mirror"): "where the pipeline stages datasets from",
    ("datasets", "offline"): "whether the pipeline may download",
    ("analysis", "tsne", "pooling"): "which pooling of the configured system the figure shows",
    ("routing", "experts"): "the study's choice of experts (sbmoe.pipeline.study reads the same list)",
    ("paper", "build"): "whether the pipeline compiles the paper",
}


def schema_defaults(schema: dict, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every ``default:`` of the schema by its path; ``*`` stands for any key of a mapping."""
    found = {path: schema["default"]} if "default" in schema and path else {}
    for name, sub in (schema.get("properties") or {}).items():
        found.update(schema_defaults(sub, (*path, name)))
    if isinstance(schema.get("additionalProperties"), dict):
        found.update(schema_defaults(schema["additionalProperties"], (*path, "*")))
    return found


DEFAULTS = schema_defaults(SCHEMA)


def test_every_schema_default_has_a_home():
    homeless = sorted(set(DEFAULTS) - set(LIBRARY) - set(PIPELINE_ONLY))
    assert not homeless, f"schema defaults neither checked against the library nor pipeline-only: {homeless}"
    assert not set(LIBRARY) - set(DEFAULTS), f"no schema default for {sorted(set(LIBRARY) - set(DEFAULTS))}"


@pytest.mark.parametrize("path", sorted(LIBRARY), ids=".".join)
def test_library_defaults_equal_the_schema(path):
    wrong = [
        (where, value)
        for where, value in LIBRARY[path]
        if value != DEFAULTS[path] or type(value) is not type(DEFAULTS[path])
    ]
    assert not wrong, f"{'.'.join(path)}: the schema's default is {DEFAULTS[path]!r}, but {wrong}"


def test_the_registry_defaults_of_systems_entries_are_the_model_defaults():
    """A systems entry's defaults (sbmoe.systems.registry) are those a ModelConfig takes when unset."""
    for spec in VARIANTS.values():
        for key, default in spec.keys.items():
            if default is not None:
                assert default == field(ModelConfig, key), (spec.name, key)


def _value_lines(node, path=()):
    """(path, value node) of every scalar or sequence value of a composed YAML document."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _value_lines(value, (*path, key.value))
    else:
        yield path, node


def _default_of(path: tuple[str, ...]):
    for pattern, default in DEFAULTS.items():
        if len(pattern) == len(path) and all(p in ("*", q) for p, q in zip(pattern, path, strict=True)):
            return pattern, default
    return None, None


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_configurations_document_every_value_other_than_the_default(config):
    """A value that differs from the schema's default is deliberate: its line says why in a comment."""
    text = config.read_text()
    lines = text.splitlines()
    undocumented = []
    for path, node in _value_lines(yaml.compose(text)):
        pattern, default = _default_of(path)
        if pattern is None or pattern in PIPELINE_ONLY:  # the study's design (its data, experts), not a setting
            continue
        value = yaml.safe_load(yaml.serialize(node))
        if value != default and "#" not in lines[node.start_mark.line]:
            undocumented.append(
                f"{config.name}:{node.start_mark.line + 1}: {'.'.join(path)}: {value!r} (default {default!r})"
            )
    assert not undocumented, "values other than the default without a comment saying why:\n" + "\n".join(undocumented)
