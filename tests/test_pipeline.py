"""The Snakemake workflow: lint, the full study's plan, configuration errors, and the CI-sized study
run end to end, interrupted halfway and resumed."""

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SBMOE_DATASET_MIRROR": ""}


def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow (not the library, which is installed) in a fresh folder."""
    for name in ("Snakefile", "config.yaml", "rules", "workflow", "config", "envs", "paper"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    shutil.copytree(ROOT / "tests" / "data" / "mini", tmp_path / "tests" / "data" / "mini")
    return tmp_path


def snakemake(folder: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=ENV)


def test_lint_is_clean():
    completed = subprocess.run([*SNAKEMAKE, "--lint", "--nolock"], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Congratulations" in completed.stdout + completed.stderr, completed.stdout + completed.stderr


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:"):]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_full_study_plans_every_job(tmp_path):
    folder = workdir(tmp_path)
    completed = snakemake(folder, "-n", "--quiet", "rules")
    assert completed.returncode == 0, completed.stderr[-3000:]
    counts = job_counts(completed.stdout + completed.stderr)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    systems = sum(len(entry.get("experts", [None])) for entry in config["systems"])
    models = len(config["encoders"]) * len(config["in_domain"]) * systems * len(config["seeds"])
    assert models == 4 * 5 * 9
    assert config["training"]["train_layers"] == "all"
    assert counts["train"] == models
    assert counts["evaluate"] == len(config["encoders"]) * len(config["in_domain"]) * len(config["seeds"])
    # every model is searched on its in-domain test sets, the MS MARCO models also on the 13 BEIR sets
    per_model_tests = {t: len(tests) for t, tests in config["in_domain"].items()}
    per_model_tests["msmarco"] += len(set(config["zero_shot"]["msmarco"]) - set(config["in_domain"]["msmarco"]))
    assert per_model_tests["msmarco"] == 3 + 13
    searches = len(config["encoders"]) * systems * sum(per_model_tests.values())
    assert counts["search"] == searches
    assert counts["export_dataset"] == 18  # 7 in-domain + 13 BEIR, nq and hotpotqa in both
    for rule in ("significance", "table_in_domain", "table_zero_shot", "table_experts", "table_reproduction",
                 "figure_expert_count", "figure_tsne", "figure_training", "paper", "dataset_stats"):
        assert counts[rule] == 1, rule
    assert counts["encode_corpus"] > searches  # MS MARCO's corpus is encoded in shards


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["analysis"]["tsne"].update(encoder="gpt"), "analysis.tsne.encoder"),
        (lambda c: c["systems"].append({"variant": "dense-moe"}), "variant"),
        (lambda c: c["encoders"]["tiny"].update(name_or_path="./no/such/model"), "encoders.tiny.name_or_path"),
        (lambda c: c["in_domain"].update(scifact=["scifact", "trec-covid"]), "datasets.offline"),
        (lambda c: c["datasets"].update(mirror="no/such/folder"), "datasets.mirror"),
        (lambda c: c["training"].update(moe_lr=-1e-4), "moe_lr"),
        (lambda c: c["in_domain"].update(cranfield=["cranfield"]), "in_domain.cranfield"),
        (lambda c: c["systems"].append({"variant": "regular-moe", "experts": [3]}), "training.train_layers"),
        (lambda c: c["systems"].append({"variant": "finetune"}), "already systems[0]"),
    ],
    ids=["unknown-encoder", "unknown-variant", "missing-model-folder", "missing-dataset-folder", "missing-mirror",
         "negative-learning-rate", "no-train-split", "regular-moe-in-a-frozen-encoder", "duplicate-system"],
)
def test_bad_configuration_stops_before_any_job(tmp_path, edit, key):
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    edit(config)
    (folder / "bad.yaml").write_text(yaml.safe_dump(config))
    completed = snakemake(folder, "--cores", "1", "--configfile", "bad.yaml")
    assert completed.returncode != 0
    assert key in completed.stdout + completed.stderr, completed.stderr[-2000:]
    assert not (folder / "results").exists() and not (folder / "resources").exists()


def finished(folder: Path) -> set[Path]:
    """Outputs Snakemake recorded as finished: with metadata and no incomplete marker."""
    def paths(kind: str) -> set[Path]:
        marks = folder / ".snakemake" / kind
        names = ("".join(p.relative_to(marks).parts) for p in marks.rglob("*") if p.is_file())
        return {folder / base64.urlsafe_b64decode(name).decode() for name in names}

    return paths("metadata") - paths("incomplete")


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes."""
    return [p for p in folder.rglob("*.tmp") if ".snakemake" not in p.parts]


def test_ci_study_runs_end_to_end_after_an_interruption(tmp_path):
    folder = workdir(tmp_path)
    command = [*SNAKEMAKE, "--cores", "2", "--configfile", "config/ci.yaml", "--quiet", "rules"]
    process = subprocess.Popen(command, cwd=folder, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = folder / "results" / "models" / "tiny" / "scifact"
    deadline = time.time() + 600
    while time.time() < deadline and not any(p.name == "train_log.jsonl" for p in finished(folder)):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # Ctrl-C: Snakemake stops its running jobs
    process.wait(timeout=300)
    recorded = finished(folder)
    done = {p: p.stat().st_mtime_ns for p in logs.glob("*/*/train_log.jsonl") if p in recorded}
    pooled = {p: p.stat().st_mtime_ns for p in (folder / "results" / "pooled").rglob("*.npz") if p in recorded}
    assert len(done) >= 1 and pooled
    assert not (folder / "results" / "paper" / "main.pdf").exists()

    resumed = snakemake(folder, "--cores", "2", "--configfile", "config/ci.yaml", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    for path, mtime in {**done, **pooled}.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was computed again"
    assert not leftovers(folder)

    results = folder / "results"
    assert (results / "paper" / "main.pdf").stat().st_size > 10_000
    for table in ("in_domain", "zero_shot", "experts", "reproduction", "dataset_stats"):
        assert "\\toprule" in (results / "analysis" / "tables" / f"{table}.tex").read_text()
    for figure in ("expert_count", "tsne", "training_curves"):
        assert (results / "analysis" / "figures" / f"{figure}.png").stat().st_size > 5_000
    evaluation = yaml.safe_load((results / "eval" / "tiny" / "scifact" / "sbmoe-paper-e3" / "seed1.json").read_text())
    assert set(evaluation) == {"scifact", "cranfield"} and set(evaluation["scifact"]) == {"top1", "all"}
    assert 0 <= evaluation["scifact"]["top1"]["metrics"]["ndcg@10"] <= 1

    again = snakemake(folder, "-n", "--configfile", "config/ci.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake(folder, "--report", "report.html", "--configfile", "config/ci.yaml")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (folder / "report.html").read_text(errors="replace")
    for name in ("expert_count.pdf", "tsne.pdf", "training_curves.pdf", "in_domain.csv", "main.pdf"):
        assert name in html, name


def test_trained_encoder_study_encodes_its_corpus_in_shards(tmp_path):
    """Without a frozen encoder (the full study's setting) nothing is pooled ahead: every model encodes
    its own corpus, shard by shard, in encode_corpus jobs that search reads."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["training"]["train_layers"] = "all"
    config["encoders"]["tiny"]["epochs"] = 1
    config["systems"] = [{"variant": "finetune"}, {"variant": "sbmoe", "combination": "paper", "experts": [3]}]
    config["seeds"] = [1]
    config["encoding"]["corpus_shards"] = {"default": 2}
    config["analysis"]["tsne"]["system"] = "sbmoe-paper-e3"
    config["paper"]["build"] = False
    (folder / "trained.yaml").write_text(yaml.safe_dump(config))

    plan = snakemake(folder, "-n", "--configfile", "trained.yaml", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout + plan.stderr)
    assert counts["encode_corpus"] == 2 * 2 * 2 and counts["search"] == 2 * 2  # models x test sets (x shards)
    assert "pool_corpus" not in counts and "pool_queries" not in counts

    completed = snakemake(folder, "--cores", "2", "--configfile", "trained.yaml")
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = folder / "results"
    encoded = results / "encoded" / "tiny" / "scifact" / "sbmoe-paper-e3" / "seed1" / "cranfield"
    assert sorted(p.name for p in (encoded / "corpus").iterdir()) == ["0", "1"]
    assert {p.name for p in (encoded / "corpus" / "1").glob("*.npz")} == {"top1.npz", "all.npz"}
    assert not (results / "pooled").exists()
    evaluation = yaml.safe_load((results / "eval" / "tiny" / "scifact" / "finetune" / "seed1.json").read_text())
    assert 0 <= evaluation["cranfield"]["none"]["metrics"]["ndcg@10"] <= 1
    assert "\\toprule" in (results / "analysis" / "tables" / "experts.tex").read_text()


def test_cpu_study_plans_prefix_caches_and_no_full_forward_training(tmp_path):
    """The CPU study trains the top layer over cached prefix states: one cache per dataset part, shared
    by every system; every model encodes its corpus shards from the cache."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "cpu-study.yaml").read_text())
    config["datasets"]["mirror"] = str(ROOT / "tests" / "data" / "mini")  # the real data's layout, offline
    (folder / "cpu.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake(folder, "-n", "--configfile", "cpu.yaml", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout + plan.stderr)
    models = sum(len(entry.get("experts", [None])) for entry in config["systems"]) * len(config["seeds"])
    assert models == 7 and counts["train"] == models
    shards = config["encoding"]["corpus_shards"]["default"]
    assert counts["prefix_corpus"] == 2 * shards  # SciFact and Cranfield, computed once for all systems
    assert counts["prefix_queries"] == 3  # SciFact train and test, Cranfield test
    assert counts["encode_corpus"] == models * 2 * shards and counts["search"] == models * 2
    assert "pool_corpus" not in counts and "pool_queries" not in counts
    listing = snakemake(folder, "-n", "--configfile", "cpu.yaml")
    assert "results/prefix/minilm/top1/scifact/corpus-0" in listing.stdout + listing.stderr
    assert "results/models/minilm/scifact/finetune-elr2e-5/seed1/model" in listing.stdout + listing.stderr


@pytest.mark.slow
def test_partially_trained_study_runs_end_to_end(tmp_path):
    """train_layers 1 on the tiny encoder: prefix caches, FT at two encoder learning rates and the
    Regular MoE trained over them, corpus encoded from the caches, tables and curves (39 jobs: a
    few minutes, so marked slow; the stages it runs are tested one by one in test_prefix.py)."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["training"]["train_layers"] = 1
    config["encoders"]["tiny"]["epochs"] = 1
    config["systems"] = [{"variant": "finetune"}, {"variant": "finetune", "encoder_lr": 2e-5},
                         {"variant": "sbmoe", "combination": "paper", "experts": [3]},
                         {"variant": "regular-moe", "experts": [3], "top_k": 2}]
    config["seeds"] = [1]
    config["analysis"]["tsne"]["system"] = "sbmoe-paper-e3"
    config["paper"]["build"] = False
    (folder / "partial.yaml").write_text(yaml.safe_dump(config))
    completed = snakemake(folder, "--cores", "2", "--configfile", "partial.yaml", timeout=1800)
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = folder / "results"
    assert sorted(p.name for p in (results / "prefix" / "tiny" / "top1" / "scifact").iterdir()) == [
        "corpus-0", "queries-test", "queries-train"]
    models = results / "models" / "tiny" / "scifact"
    assert sorted(p.name for p in models.iterdir()) == ["finetune", "finetune-elr2e-5", "regular-moe-e3-k2", "sbmoe-paper-e3"]
    log = yaml.safe_load((models / "regular-moe-e3-k2" / "seed1" / "train_log.jsonl").read_text().splitlines()[0])
    assert sum(log["layer_routing"]["1"]["expert_load"]) == pytest.approx(1.0)
    table = (results / "analysis" / "tables" / "in_domain.csv").read_text()
    assert "Regular MoE E=3 k=2" in table and "FT (encoder lr 2e-5)" in table
    evaluation = yaml.safe_load((results / "eval" / "tiny" / "scifact" / "regular-moe-e3-k2" / "seed1.json").read_text())
    assert set(evaluation) == {"scifact", "cranfield"} and set(evaluation["scifact"]) == {"none"}
