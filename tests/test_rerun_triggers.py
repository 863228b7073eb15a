"""Each job's params hold exactly what changes its output: a setting re-runs only the jobs it touches.

The CI study is recorded as finished (``snakemake --touch`` records each job's params in Snakemake's
metadata) with its outputs in place; a training setting is then changed and the dry run with
``--rerun-triggers params`` must replan the training and what follows it, but no untrained encoder
and no pooled or prefix cache, which do not depend on training settings. (``--list-params-changes`` cannot
tell: Snakemake 9 lists every recorded output there, changed or not.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ENV, SNAKEMAKE, workdir

CONFIG = "config/ci.yaml"


def snakemake(folder: Path, *args: str) -> str:
    completed = subprocess.run(
        [*SNAKEMAKE, "--configfile", CONFIG, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout + completed.stderr


def planned_rules(folder: Path) -> dict[str, int]:
    """The rules a dry run with the params trigger plans, with their job counts."""
    output = snakemake(folder, "--dry-run", "--rerun-triggers", "params", "--quiet", "rules")
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)
        if rule != "total"
    }


def recorded_outputs(folder: Path) -> dict[Path, float]:
    """Every output Snakemake recorded, with the time its job finished."""
    marks = folder / ".snakemake" / "metadata"
    found = {}
    for mark in marks.rglob("*"):
        if mark.is_file():
            name = base64.urlsafe_b64decode("".join(mark.relative_to(marks).parts)).decode()
            found[folder / name] = json.loads(mark.read_text())["endtime"]
    return found


def recorded_study(folder: Path, train_layers: int) -> Path:
    """The CI study (training ``train_layers``) with every job recorded as finished, and its outputs
    present (empty), each as old as its job's end, so that every output is newer than its inputs."""
    workdir(folder)
    edit_training(folder, train_layers=train_layers)
    snakemake(folder, "--touch", "--forceall", "--cores", "1")  # records every job; writes no output
    outputs = recorded_outputs(folder)
    cache = "results/pooled/" if train_layers == 0 else f"results/prefix/tiny/top{train_layers}/"
    assert any(cache in str(path) for path in outputs), f"the study has no cache {cache}"
    for path, finished in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (finished, finished))
    return folder


def edit_training(folder: Path, **settings) -> None:
    config = yaml.safe_load((folder / CONFIG).read_text())
    config["training"].update(settings)
    (folder / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


# a frozen encoder (the blocks trained on the pooled cache) and its top layer trained over the prefix cache
@pytest.mark.parametrize("train_layers", [0, 1])
def test_a_learning_rate_replans_training_but_no_encoder_or_cache(tmp_path, train_layers):
    folder = recorded_study(tmp_path / "study", train_layers)
    assert planned_rules(folder) == {}, "the recorded study is not up to date"

    edit_training(folder, moe_lr=2.0e-4)
    planned = planned_rules(folder)

    assert "train" in planned and "evaluate" in planned, planned
    for rule in (
        "init_model",
        "pool_queries",
        "pool_corpus",
        "prefix_queries",
        "prefix_corpus",
        "export_dataset",
        "bm25",
    ):
        assert rule not in planned, f"changing training.moe_lr replans {rule}: {planned}"
