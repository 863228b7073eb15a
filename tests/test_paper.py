"""macros.tex, the workflow scripts, and compiling paper/main.tex with synthetic generated inputs."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from threadpoolctl import threadpool_limits

from sbmoe.analysis.claims.report import abstract_sentences, verdicts_section
from sbmoe.analysis.figures.expert_count import expert_count_figure
from sbmoe.analysis.figures.routing import routing_figure
from sbmoe.analysis.figures.training import training_curves_figure
from sbmoe.analysis.figures.tsne import tsne_figure
from sbmoe.analysis.paper import (
    counted,
    load_table,
    macro_descriptions,
    metric_macro_name,
    paper_macros,
    render_macros,
    write_macros,
    zero_shot_sets,
)
from sbmoe.analysis.tables.experts import experts_table
from sbmoe.analysis.tables.in_domain import in_domain_table
from sbmoe.analysis.tables.reproduction import load_reference, reproduction_table
from sbmoe.analysis.tables.routing import routing_table
from sbmoe.analysis.tables.zero_shot import zero_shot_table
from sbmoe.data.table import benchmark
from sbmoe.data.table import load_table as load_datasets
from sbmoe.evaluation.results import REPORTED_METRICS, load_results
from sbmoe.evaluation.significance import significance_report
from sbmoe.io.atomic import write_json, write_text
from sbmoe.pipeline.study import StudyError, check_study, study_table
from sbmoe.selection.comparison import significance_against_best_single
from sbmoe.systems.labels import display_label
from test_figures import synthetic_tsne_inputs, write_training_logs
from test_routing import EXPERTS, PAIRS, synthetic_routing
from test_tables import (
    IN_DOMAIN,
    REFERENCE,
    ZERO_SHOT,
    synthetic_records,
    write_routing,
)
from test_verdicts import full_report

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "paper" / "main.tex"
SCRIPTS = ROOT / "workflow" / "scripts"
LABELS = {"msmarco": "MS MARCO", "nq": "NQ", "scifact": "SciFact", "nfcorpus": "NFCorpus", "cranfield": "Cranfield"}
BENCHMARKS = {"msmarco": "BEIR", "nq": "BEIR", "scifact": "BEIR", "nfcorpus": "BEIR", "cranfield": None}
# Upper-case commands main.tex takes from LaTeX itself; every other one must be a generated macro.
LATEX_COMMANDS = {"Delta", "Big", "IfFileExists"}
DATASET_STATS = textwrap.dedent(
    r"""
    \begin{tabular}{lrr}
    \toprule
    Dataset & Queries & Documents \\
    \midrule
    SciFact & 300 & 5{,}183 \\
    \bottomrule
    \end{tabular}
    """
)


@pytest.fixture
def latexmk():
    """The paper's tools are part of the setup (`make tex`), so their absence is a failure, not a skip."""
    if shutil.which("latexmk") is None:
        pytest.fail("latexmk is not installed: run scripts/setup-tex (make tex)")


def routing_records(folder):
    """(keys, queries npz, corpus npz) for two SB-MoE systems, one with an unused expert."""
    records = []
    for system, experts in (("sbmoe-paper-e3", [0, 1, 1, 2]), ("sbmoe-learned-e3", [0, 0, 1, 1])):
        keys = dict(encoder="tiny", trainset="msmarco", system=system, seed=1, testset="scifact", pooling="top1")
        queries = write_routing(folder / f"{system}-q.npz", ["q1", "q2"], experts[:2], 3)
        corpus = write_routing(folder / f"{system}-c.npz", ["d1", "d2", "d3", "d4"], experts, 3)
        records.append((keys, queries, corpus))
    return records


def build_generated(folder, metrics=REPORTED_METRICS, zero_shot_metrics=None, reference=REFERENCE):
    """Every file paper/main.tex inputs, from synthetic results of ``metrics``, with the library
    entry points the workflow's scripts call (Table II with the headline metric alone, as the
    workflow gives it, unless ``zero_shot_metrics`` says otherwise)."""
    generated = folder / "generated"
    results = load_results(synthetic_records(folder / "evals", seeds=(1, 2), metrics=metrics))
    report = significance_report(results, metrics, permutations=1000)
    tables = {
        "in_domain": in_domain_table(results, IN_DOMAIN, report, metrics=metrics, dataset_labels=LABELS),
        "zero_shot": zero_shot_table(
            results, "msmarco", ZERO_SHOT, report, metrics=zero_shot_metrics or metrics[:1], dataset_labels=LABELS
        ),
        "reproduction": reproduction_table(
            results, load_reference(reference), IN_DOMAIN, metrics, dataset_labels=LABELS
        ),
        "experts": experts_table(routing_records(folder), dataset_labels=LABELS),
    }
    evaluations, choices = synthetic_routing(metrics=metrics)
    routed = significance_against_best_single(evaluations, {"scifact": EXPERTS}, metrics, permutations=1000)
    tables["routing"] = routing_table(
        evaluations, EXPERTS, PAIRS, routed, {"scifact": 0.665}, metrics=metrics, dataset_labels=LABELS
    )
    for name, table in tables.items():
        table.write(generated / f"{name}.tex", generated / f"{name}.csv")
    write_text(generated / "dataset_stats.tex", DATASET_STATS)
    write_verdicts(generated)
    figures = generated / "figures"
    bars = expert_count_figure(
        results,
        IN_DOMAIN,
        figures / "expert_count.pdf",
        figures / "expert_count.png",
        metrics=metrics,
        dataset_labels=LABELS,
    )
    write_json(figures / "expert_count.json", bars)
    panels, qrels = synthetic_tsne_inputs(folder)
    with threadpool_limits(limits=1, user_api="openmp"):
        tsne = tsne_figure(panels, qrels, figures / "tsne.pdf", figures / "tsne.png", depth=60)
    logs = write_training_logs(folder)
    labelled = [(display_label(keys["system"], keys["pooling"]), path) for keys, path in logs]
    training_curves_figure(labelled, figures / "training_curves.pdf", figures / "training_curves.png")
    shares = routing_figure(choices, PAIRS, figures / "routing.pdf", figures / "routing.png", LABELS)
    values = paper_macros(
        **{name: load_table(generated / f"{name}.csv") for name in tables},
        significance=report,
        logs=logs,
        tsne=tsne,
        routing_figure=shares,
        metrics=metrics,
        benchmarks=BENCHMARKS,
        dataset_labels=LABELS,
    )
    write_macros(generated / "macros.tex", values)
    return values, results


def write_verdicts(generated):
    """The "Verdicts" section and the abstract's sentences, from a synthetic verdicts report (the
    verdicts rule always writes them, and main.tex inputs them plainly)."""
    report = full_report()
    write_text(generated / "verdicts.tex", verdicts_section(report, report["reproduction"], LABELS))
    write_text(generated / "verdicts_abstract.tex", abstract_sentences(report, LABELS))


def compile_paper(folder):
    shutil.copy(MAIN, folder / "main.tex")
    completed = subprocess.run(
        ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (folder / "main.log").read_text(errors="replace") if (folder / "main.log").exists() else ""
    assert completed.returncode == 0, completed.stdout[-3000:] + log[-3000:]
    assert (folder / "main.pdf").stat().st_size > 10_000
    if (folder / "generated" / "routing.tex").exists():
        assert r"\newlabel{tab:routing}" in (folder / "main.aux").read_text()
    assert "undefined" not in re.sub(r"\s+", " ", log).lower().replace("undefined on input line", ""), log[-3000:]
    assert "Overfull \\hbox" not in log, log[log.find("Overfull") - 200 : log.find("Overfull") + 600]
    for path in [folder / "main.tex", *(folder / "generated").glob("*.tex")]:
        text = path.read_text()
        assert not re.search(r"\w\((?:s|es)\)", text), f"{path.name}: a count without its noun in the right number"
        assert "\\tiny" not in text and "\\scriptsize" not in text, f"{path.name}: type below footnotesize"


def test_render_macros_letters_only():
    assert render_macros({"BestNdcg": "0.251"}).splitlines()[-1] == r"\newcommand{\BestNdcg}{0.251}"
    with pytest.raises(ValueError, match="letters only"):
        render_macros({"Best2": "x"})
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in macro_descriptions(REPORTED_METRICS))


def test_every_macro_is_defined_without_results():
    values = paper_macros(metrics=REPORTED_METRICS)
    assert set(values) == set(macro_descriptions(REPORTED_METRICS)) and set(values.values()) == {"--"}


def test_main_tex_uses_only_generated_macros():
    macros = macro_descriptions(REPORTED_METRICS)
    used = set(re.findall(r"\\([A-Z][A-Za-z]*)", MAIN.read_text()))
    assert used - LATEX_COMMANDS <= set(macros)
    assert set(macros) <= used, "a macro is generated but never stated in the text"


def test_macros_come_from_the_results(tmp_path):
    values, results = build_generated(tmp_path)
    ft = results[(results["system"] == "finetune") & (results["testset"] == "msmarco")]["ndcg@10"].mean()
    assert values["HeadFTNdcg"] == f"{ft:.3f}"
    assert values["HeadBestSystem"] == "SB-MoE TOP-1 E=6"
    assert values["HeadDataset"] == "MS MARCO"
    assert values["GateGradPaper"] == "0"
    assert values["GateGradLearned"] not in ("0", "--")
    assert values["NumSeeds"] == "2 seeds" and values["NumZeroShot"] == "2 zero-shot test sets"
    assert values["NumEncoders"] == "1 encoder"
    assert values["ZeroShotSets"] == "2 BEIR test sets (SciFact and NFCorpus)"
    assert values["ZeroShotTrainset"] == "MS MARCO" and values["ReproRan"] == "yes"
    assert values["ExpertRows"] == "2" and values["AllActivatedDocs"] == "1"
    assert values["MaxEpochs"] == "6"
    assert values["TsneQuery"].startswith("q")
    assert "--" not in {values[name] for name in ("NumSignificant", "SigAlpha", "ReproMeanAbsDiffNdcg")}
    assert "--" not in {value for name, value in values.items() if name.startswith("Routing")}


def test_a_reported_metric_reaches_every_table_figure_and_macro(tmp_path):
    """analysis.metrics with MAP@100 added: the tables, the number-of-experts figure and the macros
    report it, with no code naming it (the published numbers given here include it)."""
    metrics = ["ndcg@10", "recall@100", "map@100"]
    reference = yaml.safe_load(REFERENCE.read_text())
    reference["metrics"]["map@100"] = {
        name: [round(value - 0.05, 3) for value in values] for name, values in reference["metrics"]["ndcg@10"].items()
    }
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump(reference))
    values, results = build_generated(
        tmp_path, metrics, zero_shot_metrics=metrics, reference=tmp_path / "reference.yaml"
    )
    generated = tmp_path / "generated"
    for name in ("in_domain", "zero_shot", "reproduction", "routing"):
        assert "MAP@100" in (generated / f"{name}.tex").read_text(), name
        assert set(load_table(generated / f"{name}.csv")["metric"]) >= set(metrics), name
    bars = json.loads((generated / "figures" / "expert_count.json").read_text())["bars"]
    ft = results[(results["system"] == "finetune") & (results["testset"] == "msmarco")]["map@100"].mean()
    shown = [bar for bar in bars if bar["metric"] == "map@100" and bar["configuration"] == "FT"]
    assert shown[0]["testset"] == "msmarco" and shown[0]["mean"] == pytest.approx(ft)
    reproduction = load_table(generated / "reproduction.csv")
    compared = reproduction[(reproduction["metric"] == "map@100") & reproduction["difference"].notna()]
    assert len(compared) and values["ReproMeanAbsDiffMap"] == f"{compared['difference'].abs().mean():.3f}"
    assert r"\newcommand{\ReproMeanAbsDiffMap}" in (generated / "macros.tex").read_text()
    assert set(values) == set(macro_descriptions(metrics))
    assert "MAP@100" in macro_descriptions(metrics)["ReproMeanAbsDiffMap"]


def test_counts_take_their_noun_in_the_right_number():
    assert [counted(n, "encoder") for n in (1, 2)] == ["1 encoder", "2 encoders"]
    assert counted(1, "zero-shot test set") == "1 zero-shot test set"


def test_zero_shot_sets_are_named_by_the_benchmark_they_come_from():
    """Cranfield is a test collection of its own, not a BEIR set: the datasets table says so."""
    table = load_datasets(ROOT / "workflow" / "datasets.yaml")
    assert benchmark(table["scifact"]) == "BEIR" and benchmark(table["nq"]) == "BEIR"
    assert benchmark(table["cranfield"]) is None and benchmark(table["trec-dl-2019"]) is None
    benchmarks = {name: benchmark(spec) for name, spec in table.items()}
    assert zero_shot_sets({"cranfield": "Cranfield"}, benchmarks) == "the Cranfield test collection"
    both = zero_shot_sets({"scifact": "SciFact", "nfcorpus": "NFCorpus", "cranfield": "Cranfield"}, benchmarks)
    assert both == "2 BEIR test sets (SciFact and NFCorpus) and the Cranfield test collection"


def test_main_tex_abstract_states_the_verdicts_and_inputs_them_plainly():
    """The abstract's substance is the verdict sentences; no count of significant comparisons; the
    verdict files are always produced, so a missing one fails the build instead of vanishing."""
    text = MAIN.read_text()
    abstract = text[text.index(r"\begin{abstract}") : text.index(r"\end{abstract}")]
    assert r"\input{generated/verdicts_abstract.tex}" in abstract
    assert "NumSignificant" not in abstract and "are significant" not in abstract
    assert re.search(r"^\\input\{generated/verdicts\.tex\}$", text, re.MULTILINE)
    assert not re.search(r"IfFileExists\{generated/verdicts", text)


def test_zero_shot_and_experts_tables_are_set_at_a_legible_size():
    text = MAIN.read_text()
    for label in ("tab:zero-shot", "tab:experts"):
        start = text.rindex(r"\begin{table", 0, text.index(rf"\label{{{label}}}"))
        end = text.index(r"\end{table", start)
        float_text = text[start:end]
        assert "\\fittable" not in float_text and "\\resizebox" not in float_text, label
        assert not re.search(r"\\(tiny|scriptsize)\b", float_text), label
        assert "[tbp]" in float_text, label


def test_metric_macro_names_come_from_the_metric():
    assert [metric_macro_name(m, REPORTED_METRICS) for m in REPORTED_METRICS] == ["Ndcg", "Recall"]
    assert metric_macro_name("hit_rate@5", ["hit_rate@5"]) == "HitRate"
    both = ["ndcg@10", "ndcg@3"]
    assert [metric_macro_name(m, both) for m in both] == ["NdcgAtOneZero", "NdcgAtThree"]
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in macro_descriptions([*both, "map@100"]))


def test_reported_metrics_must_be_evaluated(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SBMOE_DATASET_MIRROR", raising=False)
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config["analysis"]["metrics"] = ["ndcg@10", "map@1000"]
    with pytest.raises(StudyError, match=r"analysis\.metrics\[1\]: 'map@1000' is not evaluated.*evaluation\.metrics"):
        check_study(config, study_table(config))
    config["analysis"]["metrics"] = ["map@100", "ndcg@10"]
    check_study(config, study_table(config))


def test_paper_compiles(tmp_path, latexmk):
    build_generated(tmp_path)
    compile_paper(tmp_path)


def test_paper_compiles_without_results(tmp_path, latexmk):
    """Every macro reads ``--`` and every table is empty: the report still builds."""
    build_generated(tmp_path)
    write_macros(tmp_path / "generated" / "macros.tex", paper_macros(metrics=REPORTED_METRICS))
    compile_paper(tmp_path)


SNAKEFILE = """
EVALS = {evals!r}
KEYS = {keys!r}
LOGS = {logs!r}
LOG_KEYS = {log_keys!r}
PANELS = {panels!r}
NPZ = {npz!r}
SCRIPTS = {scripts!r}
METRICS = {metrics!r}

rule all:
    input: "generated/macros.tex"

rule significance:
    input: evals=EVALS
    output: json="generated/significance.json"
    params: eval_keys=KEYS, permutations=1000, metrics=METRICS
    log: "logs/significance.log"
    script: SCRIPTS + "/significance.py"

rule in_domain:
    input: evals=EVALS, significance="generated/significance.json"
    output: tex="generated/in_domain.tex", csv="generated/in_domain.csv"
    params: table="in_domain", eval_keys=KEYS, datasets={in_domain!r}, dataset_labels={labels!r}, metrics=METRICS
    log: "logs/in_domain.log"
    script: SCRIPTS + "/tables.py"

rule zero_shot:
    input: evals=EVALS, significance="generated/significance.json"
    output: tex="generated/zero_shot.tex", csv="generated/zero_shot.csv"
    params: table="zero_shot", eval_keys=KEYS, trainset="msmarco", testsets={zero_shot!r}, metrics=METRICS[:1]
    log: "logs/zero_shot.log"
    script: SCRIPTS + "/tables.py"

rule reproduction:
    input: evals=EVALS, reference={reference!r}
    output: tex="generated/reproduction.tex", csv="generated/reproduction.csv"
    params: table="reproduction", eval_keys=KEYS, datasets={in_domain!r}, dataset_labels={labels!r}, metrics=METRICS
    log: "logs/reproduction.log"
    script: SCRIPTS + "/tables.py"

rule experts:
    input: queries=[q for _, q, _ in NPZ], corpus=[c for _, _, c in NPZ]
    output: tex="generated/experts.tex", csv="generated/experts.csv"
    params: table="experts", npz_keys=[k for k, _, _ in NPZ]
    log: "logs/experts.log"
    script: SCRIPTS + "/tables.py"

rule expert_count:
    input: evals=EVALS
    output:
        pdf="generated/figures/expert_count.pdf", png="generated/figures/expert_count.png",
        json="generated/figures/expert_count.json"
    params: eval_keys=KEYS, datasets={in_domain!r}, metrics=METRICS
    log: "logs/expert_count.log"
    script: SCRIPTS + "/figure_expert_count.py"

rule tsne:
    input:
        runs=[p["run"] for p in PANELS], queries=[p["queries"] for p in PANELS],
        corpus=[shard for p in PANELS for shard in p["corpus"]], qrels={qrels!r}
    output: pdf="generated/figures/tsne.pdf", png="generated/figures/tsne.png", json="generated/figures/tsne.json"
    params:
        labels=[p["label"] for p in PANELS], poolings=[p["pooling"] for p in PANELS],
        corpus_shards=[len(p["corpus"]) for p in PANELS], depth=60, seed=1
    log: "logs/tsne.log"
    script: SCRIPTS + "/figure_tsne.py"

rule training:
    input: logs=LOGS
    output:
        pdf="generated/figures/training_curves.pdf", png="generated/figures/training_curves.png",
        json="generated/figures/training_curves.json"
    params: labels=[k["system"] for k in LOG_KEYS]
    log: "logs/training.log"
    script: SCRIPTS + "/figure_training.py"

rule macros:
    input:
        in_domain="generated/in_domain.csv", zero_shot="generated/zero_shot.csv",
        reproduction="generated/reproduction.csv", experts="generated/experts.csv",
        significance="generated/significance.json", tsne="generated/figures/tsne.json", logs=LOGS,
        figures=["generated/figures/expert_count.pdf", "generated/figures/training_curves.pdf"]
    output: tex="generated/macros.tex"
    params: log_keys=LOG_KEYS, metrics=METRICS
    log: "logs/macros.log"
    script: SCRIPTS + "/paper_macros.py"
"""


def pipeline_folders(panels, folder):
    """Lay t-SNE panels out as the pipeline does: runs/<model>/<pooling>.trec,
    encoded/<model>/queries/<pooling>.npz and encoded/<model>/corpus/<shard>/<pooling>.npz. The first
    panel lists its shard folders (one encode job each), the second its corpus folder (a frozen
    encoder's search job)."""
    laid_out = []
    for number, (panel, pooling) in enumerate(zip(panels, ("none", "top1"), strict=True)):
        model = folder / f"model{number}"
        files = {model / "runs" / f"{pooling}.trec": panel.run, model / "queries" / f"{pooling}.npz": panel.queries}
        shards = [model / "corpus" / str(shard) for shard in range(len(panel.corpus))]
        files.update({shard / f"{pooling}.npz": path for shard, path in zip(shards, panel.corpus, strict=True)})
        for target, source in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        laid_out.append(
            {
                "label": panel.label,
                "pooling": pooling,
                "run": str(model / "runs"),
                "queries": str(model / "queries"),
                "corpus": [str(model / "corpus")] if number else [str(shard) for shard in shards],
            }
        )
    return laid_out


def test_workflow_scripts_build_the_paper(tmp_path, latexmk):
    pytest.importorskip("snakemake")
    records = synthetic_records(tmp_path / "evals")
    logs = write_training_logs(tmp_path)
    panels, qrels = synthetic_tsne_inputs(tmp_path)
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.format(
            evals=[str(path) for _, path in records],
            keys=[keys for keys, _ in records],
            logs=[str(path) for _, path in logs],
            log_keys=[keys for keys, _ in logs],
            panels=pipeline_folders(panels, tmp_path / "results"),
            npz=[(keys, str(q), str(c)) for keys, q, c in routing_records(tmp_path)],
            scripts=str(SCRIPTS),
            metrics=list(REPORTED_METRICS),
            in_domain=[list(pair) for pair in IN_DOMAIN],
            zero_shot=ZERO_SHOT,
            labels=LABELS,
            reference=str(REFERENCE),
            qrels=str(tmp_path / "qrels.tsv"),
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    macros = (tmp_path / "generated" / "macros.tex").read_text()
    assert r"\newcommand{\HeadDataset}{MS MARCO}" in macros
    description = json.loads((tmp_path / "generated" / "figures" / "tsne.json").read_text())
    assert rf"\newcommand{{\TsneQuery}}{{{description['qid']}}}" in macros
    direct = tsne_figure(panels, qrels, tmp_path / "direct.pdf", tmp_path / "direct.png", depth=60, seed=1)
    assert description == json.loads(json.dumps(direct))  # every shard was read, in both folder layouts
    write_text(tmp_path / "generated" / "dataset_stats.tex", DATASET_STATS)
    write_verdicts(tmp_path / "generated")
    compile_paper(tmp_path)
