"""The datasets table is validated with its JSON schema (workflow/schemas/datasets.schema.yaml);
a violation names the table, the dataset, the split and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbmoe.data.table import parse_table
from sbmoe.io.errors import InputError, read_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "entry, words",
    [
        (
            {"relevance_threshold": 2.0},
            "dataset 'toy': 'relevance_threshold' must be a positive integer grade, got 2.0",
        ),
        ({"drop_self_hits": "no"}, "dataset 'toy': 'drop_self_hits' must be true or false, got 'no'"),
        ({"grade_map": {"1": 2}}, "dataset 'toy': 'grade_map' must map integer grades to integer gains or null"),
        ({"label": 3}, "dataset 'toy': 'label' must be a string, got 3"),
        (
            {"splits": {"valid": {"ir_datasets": "cranfield"}}},
            "dataset 'toy', split 'valid': bad split name ('valid' is written by the pipeline)",
        ),
        (
            {"splits": {"test": "cranfield"}},
            "dataset 'toy', split 'test': a source needs either 'ir_datasets' or 'url' (with 'sha256' and 'format'), "
            "got 'cranfield'",
        ),
        (
            {"splits": {"test": {"url": "https://example.org/a.zip", "sha256": "abc", "format": "beir"}}},
            "dataset 'toy', split 'test': 'sha256' must be 64 lower-case hex digits or null, got 'abc'",
        ),
    ],
    ids=["float-threshold", "self-hits", "grade-map", "label", "valid-split", "source-string", "sha256"],
)
def test_the_table_schema_names_the_dataset_split_and_key(entry, words):
    base = {"splits": {"test": {"ir_datasets": "cranfield"}}, "relevance_threshold": 1, "drop_self_hits": False}
    with pytest.raises(InputError) as caught:
        parse_table({"datasets": {"ok": base, "toy": {**base, **entry}}}, source="table.yaml")
    assert str(caught.value) == f"table.yaml: {words}"


def test_the_table_schema_is_a_json_schema_file_of_the_workflow():
    schema = read_yaml(ROOT / "workflow" / "schemas" / "datasets.schema.yaml", "a JSON schema")
    assert set(schema["definitions"]) == {"dataset", "source"}
    assert schema["definitions"]["dataset"]["required"] == ["splits", "relevance_threshold", "drop_self_hits"]
