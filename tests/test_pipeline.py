"""The Snakemake workflow: lint, the full study's plan, configuration errors, and the CI-sized study
run end to end, and interrupted by Ctrl-C, kill -9 and a power loss, and resumed."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytrec_eval
import yaml

from conftest import ENV, ROOT, RUN_CI, SNAKEMAKE, finished, run_env, workdir

pytest.importorskip("snakemake")


def snakemake(folder: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=ENV)


def test_lint_is_clean():
    completed = subprocess.run([*SNAKEMAKE, "--lint", "--nolock"], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Congratulations" in completed.stdout + completed.stderr, completed.stdout + completed.stderr


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
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
    for rule in (
        "significance",
        "table_in_domain",
        "table_zero_shot",
        "table_experts",
        "table_reproduction",
        "figure_expert_count",
        "figure_tsne",
        "figure_training",
        "paper",
        "dataset_stats",
        "table_routing",
        "figure_routing",
    ):
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
        (lambda c: c["evaluation"].update(metrics=["ndcg@10", "hit_rate@10"]), "['evaluation']['metrics']"),
        (
            lambda c: c["analysis"]["tsne"].update(testset="msmarco"),
            "analysis.tsne.testset: 'msmarco' is not a test set",
        ),
        (lambda c: c.update(seeds=[1, 1]), "non-unique elements"),
        (lambda c: c["routing"].update(experts=["bm25", "colbert"]), "routing.experts"),
        (lambda c: c["routing"].update(splits={"scifact": "train"}), "routing.splits.scifact"),
        (lambda c: c["systems"].append({"variant": "regular-moe", "experts": [3]}), "training.train_layers"),
    ],
    ids=[
        "unknown-encoder",
        "unknown-variant",
        "missing-model-folder",
        "missing-dataset-folder",
        "missing-mirror",
        "negative-learning-rate",
        "no-train-split",
        "metric-without-cross-check",
        "tsne-testset-outside-the-study",
        "duplicate-seeds",
        "unknown-routing-expert",
        "router-on-training-queries",
        "regular-moe-in-a-frozen-encoder",
    ],
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


def test_malformed_mirror_data_fails_its_job_with_the_file_and_line(tmp_path):
    folder = workdir(tmp_path)
    shutil.copytree(folder / "tests" / "data" / "mini", folder / "mirror")
    corpus = folder / "mirror" / "scifact" / "corpus.jsonl"
    corpus.chmod(0o644)
    lines = len(corpus.read_text().splitlines())
    with corpus.open("a") as handle:
        handle.write('{"_id": "broken", "text": "cut off\n')
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["datasets"]["mirror"] = "mirror"
    (folder / "bad.yaml").write_text(yaml.safe_dump(config))
    completed = snakemake(folder, "resources/datasets/scifact", "--cores", "1", "--configfile", "bad.yaml")
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert f"error: mirror/scifact/corpus.jsonl:{lines + 1}: not valid JSON (Unterminated string" in output, output[
        -3000:
    ]
    assert "Traceback" not in output
    assert not (folder / "resources" / "datasets" / "scifact").exists()


def start(folder: Path) -> subprocess.Popen:
    """The README's command in its own process group, as a terminal runs it: with Ctrl-C's default
    action, which a test run started in the background (``pytest &``) would otherwise pass on as
    ignored, so that Snakemake never hears the Ctrl-C."""
    return subprocess.Popen(
        RUN_CI,
        cwd=folder,
        env=run_env(folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 900
    while not condition():
        assert process.poll() is None, f"the run ended (exit code {process.returncode}) before {what}"
        assert time.time() < deadline, f"no {what} within 15 minutes"
        time.sleep(0.2)


def scratch(folder: Path) -> list[Path]:
    """Scratch folders of atomic writes (sbmoe.io.atomic) under the output folders."""
    return [p for name in ("results", "resources") for p in (folder / name).rglob("*") if p.suffix in (".tmp", ".new")]


def leftovers(folder: Path) -> list[Path]:
    """What an interrupted run may leave behind: scratch folders, Snakemake's lock, incomplete marks
    and job scripts, files in the run's TMPDIR."""
    state = folder / ".snakemake"
    left = scratch(folder)
    for kind in ("locks", "incomplete", "scripts"):
        left += [p for p in (state / kind).rglob("*") if p.is_file()] if (state / kind).exists() else []
    return left + [p for p in (folder.parent / f"{folder.name}-tmp").rglob("*") if p.is_file()]


def outputs(folder: Path) -> dict[Path, bytes]:
    """Every file under results/ and resources/, but for what differs between two identical runs:
    a training log's timings and the timestamps Snakemake leaves in folder outputs."""
    found = {}
    for path in sorted(p for name in ("results", "resources") for p in (folder / name).rglob("*") if p.is_file()):
        if path.name != ".snakemake_timestamp":
            data = path.read_bytes()
            found[path.relative_to(folder)] = (
                re.sub(rb'"seconds": [0-9.e-]+, ', b"", data) if path.name == "train_log.jsonl" else data
            )
    return found


def test_ci_study_runs_end_to_end(ci_study):
    folder = ci_study
    results = folder / "results"
    assert (results / "paper" / "main.pdf").stat().st_size > 10_000
    for table in ("in_domain", "zero_shot", "experts", "reproduction", "dataset_stats", "routing"):
        assert "\\toprule" in (results / "analysis" / "tables" / f"{table}.tex").read_text()
    for figure in ("expert_count", "tsne", "training_curves", "routing"):
        assert (results / "analysis" / "figures" / f"{figure}.png").stat().st_size > 5_000
    routed = yaml.safe_load((results / "routing" / "tiny" / "scifact" / "eval.json").read_text())
    assert set(routed) == {"scifact", "cranfield"}
    assert set(routed["cranfield"]) == {
        "bm25",
        "zeroshot",
        "sbmoe-learned-e3/top1",
        "rrf",
        "wsum",
        "router-hard",
        "router-soft",
        "oracle",
    }
    assert all((results / "bm25" / name / "runs" / "test.trec").stat().st_size > 0 for name in ("scifact", "cranfield"))
    evaluation = yaml.safe_load((results / "eval" / "tiny" / "scifact" / "sbmoe-paper-e3" / "seed1.json").read_text())
    assert set(evaluation) == {"scifact", "cranfield"} and set(evaluation["scifact"]) == {"top1", "all"}
    assert 0 <= evaluation["scifact"]["top1"]["metrics"]["ndcg@10"] <= 1
    assert evaluation["scifact"]["top1"]["cross_check"]["max_difference"] <= 1e-9
    assert not leftovers(folder)

    again = snakemake(folder, "-n", "--configfile", "config/ci.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake(folder, "--report", "report.html", "--configfile", "config/ci.yaml")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (folder / "report.html").read_text(errors="replace")
    for name in ("expert_count.pdf", "tsne.pdf", "training_curves.pdf", "in_domain.csv", "routing.csv", "main.pdf"):
        assert name in html, name


# trec_eval's measures of the study's metrics (mrr@k: recip_rank when the first relevant document is within k)
TREC_EVAL = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut", "mrr": "recip_rank"}


def trec_eval_of_file(run_file: Path, qrels_file: Path, evaluation: dict) -> dict[str, dict[str, float]]:
    """The per-query values of ``evaluation``'s metrics computed by trec_eval (pytrec_eval) from the
    run file as trec_eval reads it (its scores; trec_eval orders the documents), with the
    evaluation's conventions: nDCG on the grades, the binary metrics on grades of at least the
    relevance threshold, self hits dropped where the evaluation dropped them."""
    run: dict[str, dict[str, float]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        if not (evaluation["drop_self_hits"] and doc == qid):
            run.setdefault(qid, {})[doc] = float(score)
    graded, binary = {}, {}
    for line in qrels_file.read_text().splitlines():
        qid, doc, grade = line.split("\t")
        if qid == "query-id":
            continue
        if int(grade) > 0:
            graded.setdefault(qid, {})[doc] = int(grade)
        if int(grade) >= evaluation["relevance_threshold"]:
            binary.setdefault(qid, {})[doc] = 1
    values = {}
    for metric in evaluation["per_query"]:
        name, k = metric.split("@")
        judged = graded if name == "ndcg" else binary
        requested, key = (
            ("recip_rank", "recip_rank") if name == "mrr" else (f"{TREC_EVAL[name]}.{k}", f"{TREC_EVAL[name]}_{k}")
        )
        per_query = pytrec_eval.RelevanceEvaluator(judged, {requested}).evaluate(
            {q: docs for q, docs in run.items() if q in judged}
        )
        values[metric] = {q: per_query.get(q, {}).get(key, 0.0) for q in judged}
        if name == "mrr":
            values[metric] = {q: v if v >= 1 / int(k) else 0.0 for q, v in values[metric].items()}
    return values


def assert_trec_eval_agrees(run_file: Path, qrels_file: Path, evaluation: dict) -> None:
    expected = trec_eval_of_file(run_file, qrels_file, evaluation)
    for metric, reported in evaluation["per_query"].items():
        assert set(reported) == set(expected[metric]), (run_file, metric)
        worst = max(reported, key=lambda q: abs(reported[q] - expected[metric][q]))
        assert abs(reported[worst] - expected[metric][worst]) <= 1e-9, (
            run_file,
            metric,
            worst,
            reported[worst],
            expected[metric][worst],
        )


def test_every_run_of_the_ci_study_scores_under_trec_eval_as_reported(ci_study):
    """Every run file, scored by trec_eval as a reader of results/ would score it, gives the values
    of results/eval/ (dense runs) and of the routing's eval.json (BM25, the dense experts and the
    routed runs), query by query."""
    results = ci_study / "results"
    qrels = {
        name: ci_study / "resources" / "datasets" / name / "qrels" / "test.tsv" for name in ("scifact", "cranfield")
    }
    checked = set()
    for path in sorted((results / "eval").rglob("seed*.json")):
        model = path.relative_to(results / "eval").with_suffix("")  # encoder/trainset/system/seedN
        for testset, by_pooling in yaml.safe_load(path.read_text()).items():
            for pooling, evaluation in by_pooling.items():
                run_file = results / "runs" / model / testset / f"{pooling}.trec"
                assert_trec_eval_agrees(run_file, qrels[testset], evaluation)
                checked.add(run_file)

    config = yaml.safe_load((ci_study / "config" / "ci.yaml").read_text())
    encoder, seed = config["routing"]["encoder"], config["seeds"][0]
    for path in sorted((results / "routing").glob("*/*/eval.json")):
        trainset = path.parent.name
        for testset, by_system in yaml.safe_load(path.read_text()).items():
            for system, evaluation in by_system.items():
                if system == "bm25":
                    run_file = results / "bm25" / testset / "runs" / "test.trec"
                elif system == "zeroshot":
                    run_file = results / "runs" / encoder / "none" / "zeroshot" / "seed0" / testset / "none.trec"
                elif "/" in system:
                    name, pooling = system.split("/")
                    run_file = (
                        results / "runs" / encoder / trainset / name / f"seed{seed}" / testset / f"{pooling}.trec"
                    )
                else:
                    run_file = path.parent / "runs" / testset / f"{system}.trec"
                assert_trec_eval_agrees(run_file, qrels[testset], evaluation)
                checked.add(run_file)
    # every run of a test set is in a report (the zero-shot expert's only in the routing's); the BM25
    # runs of the router's held-out split are in none
    tested = [
        *(results / "runs").rglob("*.trec"),
        *results.glob("routing/*/*/runs/*/*.trec"),
        *results.glob("bm25/*/runs/test.trec"),
    ]
    assert set(tested) == checked
    assert {"rrf", "wsum", "router-hard", "router-soft", "oracle", "none", "test"} <= {p.stem for p in checked}


def test_ci_study_resumes_after_ctrl_c_kill_9_and_a_power_loss(tmp_path, ci_study):
    """Stopped three times, each time resumed with the same command; the results are those of the
    uninterrupted run, and nothing is left behind."""
    folder = workdir(tmp_path / "study")
    results = folder / "results"

    # Ctrl-C (SIGINT to the process group) once pooled embeddings are written while other jobs run,
    # pressed again every few seconds until Snakemake has stopped (a first one can come while it
    # cannot act on it)
    process = start(folder)
    wait_until(lambda: any(p.suffix == ".npz" for p in finished(folder)), process, "pooled embeddings")
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    assert process.poll() is not None, "Ctrl-C did not stop the run within 5 minutes"
    recorded = finished(folder)
    kept = {
        p: p.stat().st_mtime_ns for p in [*results.rglob("train_log.jsonl"), *results.rglob("*.npz")] if p in recorded
    }
    assert kept and not (results / "paper" / "main.pdf").exists()

    # kill -9 of Snakemake and its jobs while a model trains: Snakemake's lock and the job's
    # scratch folder stay behind
    process = start(folder)
    wait_until(lambda: any(".train_log.jsonl." in p.name for p in scratch(folder)), process, "a model in training")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert any((folder / ".snakemake" / "locks").iterdir()) and scratch(folder)

    # a power loss while the paper is built: everything dies (kill -9), and data not yet on disk is
    # lost: the scratch files are empty, and so is the PDF that the interrupted job was writing
    process = start(folder)
    building = results / "paper"
    wait_until(lambda: any(building.glob(".main.pdf.*.tmp/build/main.tex")), process, "the paper build")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    for folder_left in scratch(folder):
        for path in folder_left.rglob("*"):
            if path.is_file():
                path.write_bytes(b"")
    (building / "main.pdf").write_bytes(b"")

    resumed = subprocess.run(RUN_CI, cwd=folder, env=run_env(folder), capture_output=True, text=True, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "removed the stale lock" in resumed.stderr
    for path, mtime in kept.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was computed again"
    assert not leftovers(folder), leftovers(folder)
    assert outputs(folder) == outputs(ci_study)


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


def test_cpu_study_plans_prefix_caches_and_no_full_forward_training(tmp_path, shared_data):
    """The CPU study trains the top layer over cached prefix states: one cache per dataset part, shared
    by every system; every model encodes its corpus shards from the cache."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "cpu-study.yaml").read_text())
    config["datasets"]["mirror"] = str(shared_data)  # planned from the real collections, offline
    (folder / "cpu.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake(folder, "-n", "--configfile", "cpu.yaml", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout + plan.stderr)
    trained = sum(len(entry.get("experts", [None])) for entry in config["systems"]) * len(config["seeds"])
    assert trained == 4 * 3 and counts["train"] == trained
    models = trained + 1  # and the untrained encoder
    shards = config["encoding"]["corpus_shards"]["default"]
    testsets = 3  # SciFact in-domain, Cranfield and NFCorpus zero-shot
    assert counts["prefix_corpus"] == testsets * shards  # computed once for all systems
    assert counts["prefix_queries"] == 1 + testsets  # SciFact train, and each test set's test queries
    assert counts["encode_corpus"] == models * testsets * shards and counts["search"] == models * testsets
    assert "pool_corpus" not in counts and "pool_queries" not in counts
    listing = snakemake(folder, "-n", "--cores", "2", "--configfile", "cpu.yaml")
    text = listing.stdout + listing.stderr
    assert "results/prefix/minilm/top1/nfcorpus/corpus-0" in text
    assert "results/models/minilm/scifact/regular-moe-e4-k2/seed3/model" in text
    # on 2 cores, a core per shard (Snakemake prints threads above 1): the two shards encode side by side
    jobs = text.split("rule ")
    encodes = [job for job in jobs if job.startswith("encode_corpus:")]
    assert len(encodes) == models * testsets * shards
    assert not any("threads:" in job for job in encodes)
    assert any("threads: 2" in job for job in jobs if job.startswith("prefix_queries:"))  # one job, both cores


@pytest.mark.slow
def test_partially_trained_study_runs_end_to_end(tmp_path):
    """train_layers 1 on the tiny encoder: prefix caches, FT at two encoder learning rates and the
    Regular MoE trained over them, corpus encoded from the caches, tables and curves (39 jobs: a
    few minutes, so marked slow; the stages it runs are tested one by one in test_prefix.py)."""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["training"]["train_layers"] = 1
    config["encoders"]["tiny"]["epochs"] = 1
    config["systems"] = [
        {"variant": "finetune"},
        {"variant": "finetune", "encoder_lr": 2e-5},
        {"variant": "sbmoe", "combination": "paper", "experts": [3]},
        {"variant": "regular-moe", "experts": [3], "top_k": 2},
    ]
    config["seeds"] = [1]
    config["analysis"]["tsne"]["system"] = "sbmoe-paper-e3"
    config["paper"]["build"] = False
    config.pop("routing")  # routing over retrievers is run end to end by the CI study
    (folder / "partial.yaml").write_text(yaml.safe_dump(config))
    completed = snakemake(folder, "--cores", "2", "--configfile", "partial.yaml", timeout=1800)
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = folder / "results"
    assert sorted(p.name for p in (results / "prefix" / "tiny" / "top1" / "scifact").iterdir()) == [
        "corpus-0",
        "queries-test",
        "queries-train",
    ]
    models = results / "models" / "tiny" / "scifact"
    assert sorted(p.name for p in models.iterdir()) == [
        "finetune",
        "finetune-elr2e-5",
        "regular-moe-e3-k2",
        "sbmoe-paper-e3",
    ]
    log = yaml.safe_load((models / "regular-moe-e3-k2" / "seed1" / "train_log.jsonl").read_text().splitlines()[0])
    assert sum(log["layer_routing"]["1"]["expert_load"]) == pytest.approx(1.0)
    table = (results / "analysis" / "tables" / "in_domain.csv").read_text()
    assert "Regular MoE E=3 k=2" in table and "FT (encoder lr 2e-5)" in table
    evaluation = yaml.safe_load(
        (results / "eval" / "tiny" / "scifact" / "regular-moe-e3-k2" / "seed1.json").read_text()
    )
    assert set(evaluation) == {"scifact", "cranfield"} and set(evaluation["scifact"]) == {"none"}
