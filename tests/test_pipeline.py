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
    assert models == 4 * 5 * 8
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
                 "figure_expert_count", "figure_tsne", "figure_training", "paper", "dataset_stats",
                 "table_routing", "figure_routing"):
        assert counts[rule] == 1, rule
    assert counts["encode_corpus"] > searches  # MS MARCO's corpus is encoded in shards
    # routing: one router per routed training set, on the test sets of its models; BM25 on every one
    routed = config["routing"]["trainsets"]
    dense = [e for e in config["routing"]["experts"] if e != "bm25"]
    assert counts["train_router"] == counts["route"] == len(routed) == 4
    assert counts["search_split"] == len(dense) * len(routed)
    assert counts["bm25"] == len({t for r in routed for t in config["in_domain"][r] + config["zero_shot"].get(r, [])})


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
        (lambda c: c["routing"].update(experts=["bm25", "colbert"]), "routing.experts"),
        (lambda c: c["routing"].update(splits={"scifact": "train"}), "routing.splits.scifact"),
    ],
    ids=["unknown-encoder", "unknown-variant", "missing-model-folder", "missing-dataset-folder", "missing-mirror",
         "negative-learning-rate", "no-train-split", "unknown-routing-expert", "router-on-training-queries"],
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
    for table in ("in_domain", "zero_shot", "experts", "reproduction", "dataset_stats", "routing"):
        assert "\\toprule" in (results / "analysis" / "tables" / f"{table}.tex").read_text()
    for figure in ("expert_count", "tsne", "training_curves", "routing"):
        assert (results / "analysis" / "figures" / f"{figure}.png").stat().st_size > 5_000
    routed = yaml.safe_load((results / "routing" / "tiny" / "scifact" / "eval.json").read_text())
    assert set(routed) == {"scifact", "cranfield"}
    assert set(routed["cranfield"]) == {"bm25", "zeroshot", "sbmoe-learned-e3/top1", "rrf", "wsum", "router-hard",
                                        "router-soft", "oracle"}
    assert all((results / "bm25" / name / "runs" / "test.trec").stat().st_size > 0 for name in ("scifact", "cranfield"))
    evaluation = yaml.safe_load((results / "eval" / "tiny" / "scifact" / "sbmoe-paper-e3" / "seed1.json").read_text())
    assert set(evaluation) == {"scifact", "cranfield"} and set(evaluation["scifact"]) == {"top1", "all"}
    assert 0 <= evaluation["scifact"]["top1"]["metrics"]["ndcg@10"] <= 1

    again = snakemake(folder, "-n", "--configfile", "config/ci.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake(folder, "--report", "report.html", "--configfile", "config/ci.yaml")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (folder / "report.html").read_text(errors="replace")
    for name in ("expert_count.pdf", "tsne.pdf", "training_curves.pdf", "in_domain.csv", "routing.csv", "main.pdf"):
        assert name in html, name


def test_trained_encoder_study_encodes_its_corpus_in_shards(tmp_path):
    """Without a frozen encoder (the full study's setting) nothing is pooled ahead: every model encodes
    its own corpus, shard by shard, in encode_corpus jobs that search reads."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["training"]["freeze_encoder"] = False
    config["encoders"]["tiny"]["epochs"] = 1
    config["systems"] = [{"variant": "finetune"}, {"variant": "sbmoe", "combination": "paper", "experts": [3]}]
    config["seeds"] = [1]
    config["encoding"]["corpus_shards"] = {"default": 2}
    config["analysis"]["tsne"]["system"] = "sbmoe-paper-e3"
    config["paper"]["build"] = False
    del config["routing"]  # routing pools the base encoder's queries; this DAG must pool nothing
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
