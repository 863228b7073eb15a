"""The study's datasets table, ``workflow/datasets.yaml``: every dataset, where each of its splits
comes from (an ir_datasets id, or a zip archive with its pinned SHA-256) and how it is scored
(relevance threshold of the binary metrics, whether BEIR's evaluator drops self hits, an optional
grade map, the label tables show).

The table is validated against the JSON schema ``workflow/schemas/datasets.schema.yaml``; a
violation is a :class:`TableError` naming the table, the dataset, the split and the key, in the
words of the failing property's ``message`` in the schema.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from sbmoe.io.errors import DataFormatError, InputError, read_yaml

MIRROR_ENV = "SBMOE_DATASET_MIRROR"
ARCHIVE_FORMATS = ("beir", "multi-domain")
VALIDATION_SPLIT = "valid"
SPLIT_ORDER = ("train", VALIDATION_SPLIT, "test")
SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "datasets.schema.yaml"


class TableError(InputError):
    """A datasets table that does not follow the schema (unknown key, missing field, bad value)."""


@dataclass(frozen=True)
class SplitSource:
    """Where one split comes from: an ir_datasets id, or a zip archive (URL, SHA-256, layout)."""

    ir_datasets: str | None = None
    url: str | None = None
    sha256: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One row of the table: a dataset's splits and its evaluation conventions."""

    name: str
    splits: dict[str, SplitSource]
    relevance_threshold: int
    drop_self_hits: bool
    grade_map: dict[int, int | None] | None = None
    label: str = ""  # the name tables and figures show (the published one where the paper names it)

    def __post_init__(self):
        object.__setattr__(self, "label", self.label or self.name)

    def has_own_corpus(self, split: str) -> bool:
        """Whether ``split`` is exported with its own ``corpus.<split>.jsonl``: its archive differs from
        the test split's source (ir_datasets splits of one dataset share its documents)."""
        main = self.splits.get("test") or next(iter(self.splits.values()))
        source = self.splits[split]
        if source is main:
            return False
        return source.url != main.url


def benchmark(spec: DatasetSpec) -> str | None:
    """The benchmark a dataset's test split is taken from: ``"BEIR"`` for BEIR's ir_datasets ids
    (``beir/...``) and BEIR archives, None for a test collection of its own (Cranfield, TREC DL)."""
    source = spec.splits.get("test") or next(iter(spec.splits.values()))
    if (source.ir_datasets or "").startswith("beir/") or source.format == "beir":
        return "BEIR"
    return None


def load_table(path: str | os.PathLike) -> dict[str, DatasetSpec]:
    """Read and validate the datasets table (``workflow/datasets.yaml``)."""
    try:
        document = read_yaml(path, "a datasets table in YAML")
    except DataFormatError as error:
        raise TableError(str(error)) from None
    return parse_table(document, source=str(path))


# YAML's 2.0 is no grade, nor true a number: JSON Schema's integer would take both
_TYPES = jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=_TYPES)
_validator: jsonschema.protocols.Validator | None = None


def _schema_validator() -> jsonschema.protocols.Validator:
    global _validator
    if _validator is None:
        if not SCHEMA.is_file():
            raise TableError(f"{SCHEMA}: missing (the datasets table's schema, part of the repository's workflow/)")
        _validator = _Validator(read_yaml(SCHEMA, "the JSON schema of the datasets table"))
    return _validator


def parse_table(document: Any, source: str = "datasets table") -> dict[str, DatasetSpec]:
    """Validate a parsed table; any unknown key, missing field or bad value raises :class:`TableError`."""
    errors = list(_schema_validator().iter_errors(document))
    if errors:
        first = min(errors, key=lambda error: _document_order(document, error))
        raise TableError(_problem(first, source))
    return {name: _dataset(name, entry) for name, entry in document["datasets"].items()}


def _dataset(name: str, entry: dict) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        splits={split: SplitSource(**source) for split, source in entry["splits"].items()},
        relevance_threshold=entry["relevance_threshold"],
        drop_self_hits=entry["drop_self_hits"],
        grade_map=entry.get("grade_map"),
        label=entry.get("label", ""),
    )


def _document_order(document: Any, error: jsonschema.ValidationError) -> tuple[int, ...]:
    """Where an error is in the table, as positions of its keys: the first one is reported, as a
    reader going down the file meets it."""
    order, node = [], document
    for key in error.absolute_path:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        order.append(keys.index(key) if key in keys else len(keys))
        node = node[key]
    if error.validator == "propertyNames" or "propertyNames" in error.absolute_schema_path:
        order.append(list(node).index(error.instance) if isinstance(node, dict) and error.instance in node else 0)
    return tuple(order)


def _problem(error: jsonschema.ValidationError, source: str) -> str:
    """The message of a schema violation: where (table, dataset, split), then what is wrong."""
    path = list(error.absolute_path)
    name_error = "propertyNames" in error.absolute_schema_path
    if name_error and len(path) in (1, 3) and path[-1] in ("datasets", "splits"):
        path.append(error.instance)  # a bad dataset or split name: it is where the problem is
    where = source
    if len(path) >= 2 and path[0] == "datasets":
        where += f": dataset {path[1]!r}"
    if len(path) >= 4 and path[2] == "splits":
        where += f", split {path[3]!r}"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and schema.get("additionalProperties") is False:
        allowed = list(schema.get("properties", {}))
        unknown = next(key for key in error.instance if key not in allowed)
        return f"{where}: unknown key {unknown!r} (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        return f"{where}: {schema.get('missing', {}).get(missing) or f'missing field {missing!r}'}"
    if error.validator == "type" and "properties" in schema:
        return f"{where}: expected a mapping with keys {', '.join(schema['properties'])}"
    message = schema.get("message") or _field_message(path) or error.message
    got = "" if name_error or isinstance(error.instance, (dict, list)) else f", got {error.instance!r}"
    return f"{where}: {message}{got}"


def _field_message(path: list) -> str | None:
    """The schema's message of the table field that ``path`` is inside (e.g. an entry of grade_map)."""
    schema = _schema_validator().schema
    dataset = schema["definitions"]["dataset"]["properties"]
    if len(path) >= 3 and path[0] == "datasets" and path[2] in dataset and not (path[2] == "splits" and len(path) > 4):
        return dataset[path[2]].get("message")
    if len(path) >= 5:
        sources = schema["definitions"]["source"]
        fields = {**sources["then"]["properties"], **sources["else"]["properties"]}
        return fields.get(path[4], {}).get("message")
    return None


def lookup(table: Mapping[str, DatasetSpec], name: str) -> DatasetSpec:
    """The entry of dataset ``name``; an unknown name lists the table's."""
    if name not in table:
        raise TableError(f"unknown dataset {name!r}; the table names: {', '.join(table)}")
    return table[name]
