"""Inputs that ran to the end with wrong or misleading numbers, or failed unclearly: each is refused
when the study is planned (before any job), or where it happens, with a message naming the key or
the file.

Planning checks are exercised through :func:`check_study` and, for a few, through a dry run of the
workflow (``snakemake -n --configfile``) in a copy of it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ENV, ROOT, SNAKEMAKE, workdir
from sbmoe.analysis.tables.reproduction import load_reference
from sbmoe.analysis.tables.routing import load_bm25_reference
from sbmoe.data.datasets import export_dataset
from sbmoe.data.table import parse_table
from sbmoe.io.collection import Collection, load_qrels
from sbmoe.io.errors import DataFormatError, InputError, read_yaml
from sbmoe.models.encoder import TINY_RANDOM_MODEL, EncoderConfig
from sbmoe.models.retriever import ModelConfig
from sbmoe.pipeline.config import load_config
from sbmoe.pipeline.stages import train_stage
from sbmoe.pipeline.study import (
    StudyError,
    check_config_files,
    check_study,
    study_table,
)
from sbmoe.training.config import TrainConfig


@pytest.fixture
def study(monkeypatch) -> dict:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SBMOE_DATASET_MIRROR", raising=False)
    return yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())


def refused(config: dict, key: str, *words: str) -> str:
    with pytest.raises(StudyError) as caught:
        check_study(config, study_table(config))
    message = str(caught.value)
    assert message.startswith(f"{key}: "), message
    for text in words:
        assert text in message, f"{text!r} not in {message!r}"
    return message


def snakemake(folder: Path, *args: str) -> tuple[int, str]:
    """Snakemake's exit status and output (it prints errors on stdout) in the copy ``folder``."""
    completed = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        env=ENV,
    )
    return completed.returncode, completed.stdout


def dry_run(folder: Path, text: str) -> tuple[int, str]:
    """``snakemake -n --configfile study.yaml`` in the copy ``folder`` of the workflow."""
    (folder / "study.yaml").write_text(text)
    return snakemake(folder, "-n", "--configfile", "study.yaml")


# ---- silent leaks and overrides, refused at planning ----


def test_router_never_learns_on_the_queries_it_is_scored_on(study):
    study["routing"]["splits"] = {"scifact": "test"}
    refused(
        study, "routing.splits.scifact", "'test' queries of 'scifact'", "test queries of 'scifact'", "held-out split"
    )
    # a split other than the one scored is fine, and so is the default (valid, carved from train)
    study["routing"]["splits"] = {}
    check_study(study, study_table(study))


def test_router_split_with_the_test_queries_of_a_zero_shot_set_is_refused(study, tmp_path):
    """The router of a training set is applied to its zero-shot sets too: a routing split that is
    another set's test queries (the same ir_datasets queries) leaks as well."""
    table = tmp_path / "datasets.yaml"
    text = (ROOT / "workflow" / "datasets.yaml").read_text()
    document = yaml.safe_load(text)
    document["datasets"]["scifact"]["splits"]["dev"] = dict(document["datasets"]["cranfield"]["splits"]["test"])
    table.write_text(yaml.safe_dump(document))
    study["datasets"]["table"] = str(table)
    study["routing"]["splits"] = {"scifact": "dev"}
    refused(study, "routing.splits.scifact", "'dev' queries of 'scifact'", "test queries of 'cranfield'")


def test_a_test_set_whose_queries_are_the_training_queries_is_refused(study, tmp_path):
    table = tmp_path / "datasets.yaml"
    document = yaml.safe_load((ROOT / "workflow" / "datasets.yaml").read_text())
    document["datasets"]["scifact"]["splits"]["train"] = dict(document["datasets"]["cranfield"]["splits"]["test"])
    table.write_text(yaml.safe_dump(document))
    study["datasets"]["table"] = str(table)
    refused(study, "zero_shot.scifact", "'cranfield' is tested on the queries 'scifact' trains on", str(table))


def test_zero_shot_set_that_is_the_training_set_is_refused(study):
    study["zero_shot"]["scifact"] = ["cranfield", "scifact"]
    refused(study, "zero_shot.scifact", "'scifact' is the training set itself", "not zero-shot")
    study["in_domain"]["scifact"] = ["scifact", "cranfield"]
    study["zero_shot"]["scifact"] = ["cranfield"]
    refused(study, "zero_shot.scifact", "'cranfield' is listed in in_domain.scifact")


def test_the_same_expert_named_twice_is_refused(study):
    study["routing"]["experts"] = ["bm25", "zeroshot", "sbmoe-learned-e3", "sbmoe-learned-e3/top1"]
    refused(study, "routing.experts", "'sbmoe-learned-e3/top1' is the retriever 'sbmoe-learned-e3' again")
    study["routing"]["experts"] = ["bm25", "zeroshot", "zeroshot/none"]
    refused(study, "routing.experts", "'zeroshot/none' is the retriever 'zeroshot' again")


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("seeds: [1]\ntraining: {epochs: 1}\nsearch: {k: 10}\ntraining:\n  epochs: 2\n", 4, "training"),
        ("training:\n  epochs: 1\n  batch_size: 8\n  epochs: 2\n", 4, "epochs"),
        ("routing:\n  router: {hidden: 0, folds: 3, hidden: 2}\n", 2, "hidden"),
        ('{"seed": 1, "model": {"variant": "sbmoe"}, "seed": 2}\n', 1, "seed"),
    ],
    ids=["section", "nested", "flow-mapping", "json"],
)
def test_yaml_keys_given_twice_are_refused_with_file_line_and_key(tmp_path, text, line, key):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=rf"^{path}:{line}: duplicate key '{key}' \(first on line \d+\)"):
        read_yaml(path, "a configuration")
    with pytest.raises(InputError, match=rf"^{path}:{line}: duplicate key '{key}'"):
        check_config_files([path])


def test_an_anchor_merge_overridden_on_purpose_is_no_duplicate(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("base: &base {epochs: 1, batch_size: 8}\ntraining:\n  <<: *base\n  epochs: 2\n")
    assert read_yaml(path, "a configuration")["training"] == {"epochs": 2, "batch_size": 8}


def test_every_yaml_the_project_reads_refuses_duplicates(study, tmp_path):
    # the dataset table: the last of two entries of one dataset would win
    table = tmp_path / "datasets.yaml"
    text = (ROOT / "workflow" / "datasets.yaml").read_text()
    entry = text[text.index("  scifact:") :]
    entry = entry[: entry.index("\n  ", 1) + 1] if "\n  " in entry[1:] else entry
    table.write_text(text + entry)
    study["datasets"]["table"] = str(table)
    with pytest.raises(StudyError, match=rf"^datasets.table: {table}:\d+: duplicate key 'scifact'"):
        check_study(study, study_table(study))
    # the published numbers and BEIR's BM25 reference
    for name, reader in (("reference_numbers.yaml", load_reference), ("bm25_reference.yaml", load_bm25_reference)):
        path = tmp_path / name
        original = (ROOT / "workflow" / name).read_text()
        reader(ROOT / "workflow" / name)
        first_key = next(line for line in original.splitlines() if line and not line.startswith(("#", " ")))
        path.write_text(original + first_key + "\n")
        with pytest.raises(InputError, match=rf"^{path}:\d+: duplicate key '{first_key.split(':')[0]}'"):
            reader(path)
    # a model-and-training configuration (sbmoe train / init)
    path = tmp_path / "model.yaml"
    path.write_text("encoder: {name_or_path: random:tiny-bert}\nmodel: {variant: finetune}\nseed: 1\nseed: 2\n")
    with pytest.raises(InputError, match=rf"^{path}:4: duplicate key 'seed'"):
        load_config(path)


def test_a_section_given_twice_in_the_configfile_stops_the_dry_run(tmp_path):
    folder = workdir(tmp_path / "study")
    text = (folder / "config" / "ci.yaml").read_text() + "training:\n  epochs: 1\n"
    code, output = dry_run(folder, text)
    line = text.count("\n") - 1  # the appended section's first line
    assert code != 0 and f"study.yaml:{line}: duplicate key 'training' (first on line " in output, output[-3000:]


def test_splits_sharing_queries_are_refused_where_a_collection_is_loaded(tmp_path, tiny_collection):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_collection, folder)
    train = folder / "qrels" / "train.tsv"
    train.write_text(train.read_text() + "q31\td31\t1\nq35\td35\t1\n")  # two test queries among the training ones
    for split in ("train", "test"):
        with pytest.raises(DataFormatError) as caught:
            Collection.load(folder, split)
        message = str(caught.value)
        assert "2 query id(s) are also judged in" in message and "'q31', 'q35'" in message, message
        assert str(train) in message and str(folder / "qrels" / "test.tsv") in message, message
    # the validation split inside train is the one exception
    train.write_text("\n".join(train.read_text().splitlines()[:-2]) + "\n")
    Collection.load(folder, "train")


def test_a_mirrored_collection_whose_splits_share_queries_is_refused(tmp_path, tiny_collection):
    mirror = tmp_path / "mirror"
    shutil.copytree(tiny_collection, mirror / "toy")
    (mirror / "toy" / "qrels" / "valid.tsv").unlink()
    test = mirror / "toy" / "qrels" / "test.tsv"
    test.write_text(test.read_text() + "q3\td3\t1\n")
    entry = {
        "splits": {"train": {"ir_datasets": "toy/train"}, "test": {"ir_datasets": "toy/test"}},
        "relevance_threshold": 1,
        "drop_self_hits": False,
    }
    with pytest.raises(DataFormatError, match=r"1 query id\(s\) are also judged in .*test.tsv.*'q3'"):
        export_dataset("toy", parse_table({"datasets": {"toy": entry}}), tmp_path / "datasets" / "toy", mirror=mirror)
    assert not (tmp_path / "datasets" / "toy").exists()


# ---- unclear failures: clear messages at planning ----


@pytest.mark.parametrize("step", [0.3, 0.15, 0.4])
def test_wsum_step_must_divide_one(study, step):
    study["routing"]["wsum_step"] = step
    refused(study, "routing.wsum_step", f"{step} does not divide 1 into whole steps")


def test_wsum_steps_that_divide_one_pass(study):
    for step in (0.1, 0.2, 0.25, 0.5, 0.05):
        study["routing"]["wsum_step"] = step
        check_study(study, study_table(study))


def test_train_layers_beyond_the_encoder_depth(study, tiny_encoder_dir):
    study["training"]["train_layers"] = 3
    refused(study, "training.train_layers", "3 top layers asked", "encoder 'tiny' (random:tiny-bert) has 2")
    study["encoders"]["tiny"]["name_or_path"] = str(tiny_encoder_dir)  # a local folder: its config.json
    depth = json.loads((tiny_encoder_dir / "config.json").read_text())["num_hidden_layers"]
    study["training"]["train_layers"] = depth + 1
    refused(study, "training.train_layers", f"{depth + 1} top layers asked", f"has {depth}")
    study["training"]["train_layers"] = depth
    check_study(study, study_table(study))


def test_train_layers_of_a_hub_model_not_in_the_cache_is_not_fetched(study, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    study["encoders"]["tiny"]["name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    study["training"]["train_layers"] = 99
    check_study(study, study_table(study))  # unknown depth: the job that loads the model checks it


def test_moe_layers_out_of_range_when_every_layer_is_trained(study):
    study["training"]["train_layers"] = "all"
    study["systems"].append({"variant": "regular-moe", "experts": [2], "moe_layers": [-3]})
    refused(
        study,
        f"systems[{len(study['systems']) - 1}].moe_layers",
        "layer -3 does not exist in encoder 'tiny'",
        "2 layers",
    )
    study["systems"][-1]["moe_layers"] = [1, -1]
    refused(study, f"systems[{len(study['systems']) - 1}].moe_layers", "names a layer of encoder 'tiny' twice")
    study["systems"][-1]["moe_layers"] = [0, -1]
    check_study(study, study_table(study))


def test_train_layers_not_a_whole_number_names_the_configfile(tmp_path):
    folder = workdir(tmp_path / "study")
    text = (folder / "config" / "ci.yaml").read_text().replace("train_layers: 0", "train_layers: 1.0")
    code, output = dry_run(folder, text)
    assert (
        code != 0
        and f"invalid configuration ({folder / 'study.yaml'}): training.train_layers: 1.0 is not 'all' or a whole "
        "number of layers (write 1)"
        in output
    ), output[-3000:]
    assert "config.yaml" not in output


# ---- unclear failures: precise messages where they happen ----


def test_training_qrels_without_a_positive_grade_say_so(tmp_path, tiny_collection):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_collection, folder)
    for split in ("train", "valid"):
        path = folder / "qrels" / f"{split}.tsv"
        path.write_text(path.read_text().replace("\t1\n", "\t0\n"))
    model = ModelConfig(EncoderConfig(TINY_RANDOM_MODEL, query_max_length=16, doc_max_length=24), variant="finetune")
    with pytest.raises(DataFormatError) as caught:
        train_stage(
            folder,
            model,
            TrainConfig(epochs=1, batch_size=4),
            tmp_path / "out" / "model",
            tmp_path / "out" / "log.jsonl",
            device="cpu",
            progress=False,
        )
    message = str(caught.value)
    assert message.startswith(f"{folder / 'qrels' / 'train.tsv'}: no judgement has a positive grade"), message
    assert "valid_fraction" not in message


def test_cr_only_line_ends_are_named(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_bytes(b"query-id\tcorpus-id\tscore\rq1\td1\t1\rq2\td2\t1\r")
    with pytest.raises(
        DataFormatError,
        match=rf"^{path}:1: a carriage return \(CR\) inside the line at column 25, "
        "as in a file with CR-only line ends",
    ):
        load_qrels(path)


def test_a_stray_test_corpus_is_named_not_the_qrels(tmp_path, tiny_collection):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_collection, folder)
    (folder / "corpus.test.jsonl").write_text('{"_id": "other", "text": "another corpus"}\n')
    with pytest.raises(
        DataFormatError,
        match=rf"^{folder / 'corpus.test.jsonl'}: the test split's corpus is "
        "corpus.jsonl",
    ):
        Collection.load(folder, "test")


def test_a_second_run_beside_a_live_one_is_refused_naming_it(tmp_path):
    """Two Snakemake processes in one folder: the second is refused before Snakemake's own lock
    check, naming the first, and never advised to --unlock; a dry run may look on."""
    folder = workdir(tmp_path / "study")
    first = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "1", "--configfile", "config/ci.yaml"],
        cwd=folder,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lock = folder / ".snakemake" / "sbmoe-running.lock"
        deadline = time.time() + 120
        while not (lock.is_file() and lock.read_text().startswith(f"pid {first.pid},")):
            assert first.poll() is None and time.time() < deadline, "the first run never claimed the folder"
            time.sleep(0.1)
        code, output = snakemake(folder, "--cores", "1", "--configfile", "config/ci.yaml")
        assert first.poll() is None, "the first run ended before the second was refused: no test"
        assert code != 0 and f"another run (pid {first.pid}, started at " in output, output[-3000:]
        assert "--unlock" not in output and "cannot be locked" not in output
        code, output = snakemake(folder, "-n", "--configfile", "config/ci.yaml")
        assert code == 0, output[-3000:]
    finally:
        os.killpg(first.pid, signal.SIGINT)
        try:
            first.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()


def test_study_configurations_of_the_repository_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SBMOE_DATASET_MIRROR", raising=False)
    for name in ("config.yaml", "config/demo.yaml", "config/ci.yaml", "config/cpu-study.yaml"):
        check_config_files([ROOT / name])
        config = copy.deepcopy(read_yaml(ROOT / name, "a study configuration"))
        config["datasets"]["offline"] = False  # the full study's datasets need not be on this machine
        check_study(config, study_table(config))
