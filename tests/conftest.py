"""Shared fixtures: a tiny randomly initialised BERT encoder saved to disk, a tiny BEIR collection,
copies of the workflow, and the CI-sized study run once locally.

No model hub is reachable, so every test that needs an encoder uses a one-layer, 32-dimensional
BERT with random weights and a word-level vocabulary written here.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(120)]
NUM_TOPICS = 40  # queries q0..q39, each with its own positive document d0..d39


def write_vocab(folder: Path) -> Path:
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A folder with a random one-layer BERT (h=32) and its word-level tokenizer (save_pretrained)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    write_vocab(folder)
    # from_pretrained reads vocab.txt in transformers 4 and 5 (5 ignores the vocab_file keyword)
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert tokenizer("w27 w4")["input_ids"] == [2, 32, 9, 3], "the tiny tokenizer did not read its vocabulary"
    torch.manual_seed(1234)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def encoder_config(tiny_encoder_dir):
    """A factory of :class:`EncoderConfig` for the tiny encoder, with keyword overrides."""
    from sbmoe.models.encoder import EncoderConfig

    def make(**overrides) -> EncoderConfig:
        values = {"name_or_path": str(tiny_encoder_dir), "query_max_length": 32, "doc_max_length": 64}
        values.update(overrides)
        return EncoderConfig(**values)

    return make


def _topic_words(topic: int) -> list[str]:
    """Three words of the topic's own, so that topics are separable."""
    return [f"w{3 * topic + j}" for j in range(3)]


def write_tiny_collection(folder: Path) -> Path:
    """A BEIR-layout collection: 40 topics, each a query and a positive document, and distractors.

    qrels/train.tsv judges q0..q29, qrels/test.tsv judges q30..q39, qrels/valid.tsv judges q24..q29
    (a held-out subset of the training queries for the train stage).
    """
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    corpus, queries = [], []
    for topic in range(NUM_TOPICS):
        words = _topic_words(topic)
        filler = [rng.choice(WORDS) for _ in range(rng.randint(2, 12))]
        corpus.append({"_id": f"d{topic}", "title": words[0], "text": " ".join(words[1:] + filler)})
        queries.append({"_id": f"q{topic}", "text": " ".join(words[: rng.randint(1, 3)])})
    for extra in range(10):
        corpus.append({"_id": f"x{extra}", "title": "", "text": " ".join(rng.choice(WORDS) for _ in range(8))})
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for record in corpus:
            handle.write(json.dumps(record) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for record in queries:
            handle.write(json.dumps(record) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)

    def write(split, topics):
        lines = ["query-id\tcorpus-id\tscore"] + [f"q{t}\td{t}\t1" for t in topics]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    write("train", range(0, 30))
    write("test", range(30, NUM_TOPICS))
    write("valid", range(24, 30))
    return folder


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory) -> Path:
    return write_tiny_collection(tmp_path_factory.mktemp("tiny-beir") / "tiny")


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real collections beside the repository (``../shared/data``): part of the setup, so a
    missing one fails the tests that read it rather than skipping them."""
    missing = [
        name for name in ("scifact", "nfcorpus", "cranfield") if not (SHARED_DATA / name / "corpus.jsonl").is_file()
    ]
    if missing:
        pytest.fail(
            f"{SHARED_DATA} lacks {', '.join(missing)} (BEIR layout, corpus.jsonl): clone the repository "
            "beside the shared folder that holds them"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    """Tiny models gain nothing from threads, and other work shares the machine's cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---- the workflow: a copy of it per test, and the CI-sized study run once on this machine ----

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SBMOE_DATASET_MIRROR": ""}


def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow (not the library, which is installed) in a fresh folder."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "rules", "workflow", "config", "envs", "paper", "profiles"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    shutil.copytree(ROOT / "tests" / "data" / "mini", tmp_path / "tests" / "data" / "mini")
    return tmp_path


def finished(folder: Path) -> set[Path]:
    """Outputs Snakemake recorded as finished: with metadata and no incomplete marker."""

    def paths(kind: str) -> set[Path]:
        marks = folder / ".snakemake" / kind
        names = ("".join(p.relative_to(marks).parts) for p in marks.rglob("*") if p.is_file())
        return {folder / base64.urlsafe_b64decode(name).decode() for name in names}

    return paths("metadata") - paths("incomplete")


# The README's command (its "Resume" section: the same after Ctrl-C, kill -9 and a power loss), with
# the CI configuration.
RUN_CI = [*SNAKEMAKE, "--cores", "all", "--configfile", "config/ci.yaml"]


def run_env(folder: Path) -> dict[str, str]:
    """The test environment, with the run's own TMPDIR (beside ``folder``) to find what it leaves
    there, and the dates in PDFs (matplotlib's, pdfTeX's) fixed so that two runs write the same bytes."""
    tmpdir = folder.parent / f"{folder.name}-tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**ENV, "TMPDIR": str(tmpdir), "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}


@pytest.fixture(scope="session")
def ci_study(tmp_path_factory) -> Path:
    """The CI-sized study, run once on this machine without interruption: the end-to-end checks read
    it, the interrupted runs and the SLURM run are compared with it."""
    folder = workdir(tmp_path_factory.mktemp("ci") / "study")
    completed = subprocess.run(RUN_CI, cwd=folder, env=run_env(folder), capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return folder
